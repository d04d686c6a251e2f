-- pool_cooldown: pushes a container's NextAvailable to at least now + d
-- (never earlier than it is: 1µs later when it is later already), then
-- publishes the pool's name. A container
-- whose TTL has passed is purged (counted in KEYS[5]) and not found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] channel to publish on
-- ARGV[2] the pool's name (the message)
-- ARGV[3] the id
-- ARGV[4] d (µs, >= 0)
-- Returns {now, nextAvailableUs}, or {now, -1} when the id is not found.
-- A record that does not decode is corrupt (see lib_pool.lua).
--#include lib_pool
local id = ARGV[3]
local r = record(id)
local score = redis.call('ZSCORE', ready, id)
if not r and not score then return {now, -1} end
if not r or not score then corrupt('container "' .. id .. '": record and ready set disagree') end
if purgeIfExpired(id) then return {now, -1} end
-- NextAvailable always moves, if only by 1µs when it is later than now + d
-- already: so the Cooldown overtakes every grant made before it (see
-- lib_pool.lua), and handing one back cannot undo it.
local nextAt = math.max(tonumber(score) + 1, us + tonumber(ARGV[4]))
redis.call('ZADD', ready, string.format('%.0f', nextAt), id)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {now, nextAt}
