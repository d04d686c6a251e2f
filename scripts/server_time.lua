-- server_time: the Redis server's clock, the one clock xsync trusts.
-- KEYS: none
-- ARGV: none
-- Returns: the server time in milliseconds since the Unix epoch (integer).
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
