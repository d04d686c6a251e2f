-- pool_waiting: writes how many requests of one client wait for the pool's
-- containers, and drops the entries of other clients that have ended.
-- KEYS[1] waiting: HASH client id -> "count:untilMs", untilMs the server
--         time (ms) after which readers ignore the entry: when the client's
--         last waiter gives up (0: never); beside the pool's keys, in its
--         slot
-- ARGV[1] client id
-- ARGV[2] count (0 deletes the entry)
-- ARGV[3] untilMs
-- Returns the number of entries left. The key itself expires with the
-- latest of its entries' untilMs, or never while one has none.
local waiting = KEYS[1]
local ty = redis.call('TYPE', waiting)['ok']
if ty ~= 'none' and ty ~= 'hash' then
  return redis.error_reply('XSYNC_CORRUPT ' .. waiting .. ' is a ' .. ty .. ', not a hash')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', waiting, ARGV[1], ARGV[2] .. ':' .. ARGV[3])
else
  redis.call('HDEL', waiting, ARGV[1])
end

-- One entry per client: small. Ended entries (a client that crashed with
-- waiters that had deadlines) go; the key lives as long as the last one.
local all = redis.call('HGETALL', waiting)
local latest, forever, left = 0, false, 0
for i = 1, #all, 2 do
  local untilMs = tonumber(string.match(all[i + 1], ':(%d+)$') or '-1')
  if untilMs == 0 then
    forever, left = true, left + 1
  elseif untilMs > now then
    latest, left = math.max(latest, untilMs), left + 1
  else
    redis.call('HDEL', waiting, all[i])
  end
end
if left > 0 and forever then
  redis.call('PERSIST', waiting)
elseif left > 0 then
  redis.call('PEXPIREAT', waiting, latest)
end
return left
