-- pool_cooldown: pushes a container's NextAvailable to at least now + d
-- (never earlier than it is: 1µs later when it is later already), then
-- publishes the pool's name. A retired container's kept NextAvailable
-- moves the same way, and nothing is published: it stays retired. A
-- container whose TTL has passed is purged (counted in KEYS[5]) and not
-- found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] channel to publish on (see lib_publish)
-- ARGV[2] the pool's name (the message)
-- ARGV[3] the id
-- ARGV[4] d (µs, >= 0)
-- Returns {now, nextAvailableUs}, or {now, -1} when the id is not found.
-- A record that does not decode, or one that disagrees with the ready set,
-- is corrupt (see lookup in lib_pool.lua).
--#include lib_publish
--#include lib_pool
local id = ARGV[3]
local r, score = lookup(id)
if not r then return {now, -1} end
-- NextAvailable always moves, if only by 1µs when it is later than now + d
-- already: so the Cooldown overtakes every grant made before it (see
-- lib_pool.lua), and handing one back cannot undo it.
local nextAt = math.max(score + 1, us + tonumber(ARGV[4]))
if r[8] > 0 then
  r[8] = nextAt
  redis.call('HSET', meta, id, encode(r))
  return {now, nextAt}
end
redis.call('ZADD', ready, string.format('%.0f', nextAt), id)
publish(ARGV[1], ARGV[2])
return {now, nextAt}
