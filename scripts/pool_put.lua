-- pool_put: adds or updates containers, all or none. A new id is ready at
-- once (NextAvailable = now, UsageCount 0). An existing id keeps its
-- UsageCount, NextAvailable and failure streak and takes the new CreatedAt,
-- TTL, Interval and Data. A retired id is revived: back in the ready set at
-- the NextAvailable it had when it was retired, with its streak cleared.
-- An id whose TTL has passed counts as purged (KEYS[5]) and is added as
-- new. Every record touched is decoded before anything is written.
-- Publishes the pool's name, so that waiters of every client wake.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] channel to publish on (see lib_publish)
-- ARGV[2] the pool's name (the message)
-- ARGV[3+4(i-1)] .. ARGV[6+4(i-1)]: container i's id, createdMs (0: now),
--         ttlMs (0: forever), intervalMs
-- ARGV[3+4k+(i-1)] container i's data, for k containers
-- Every Put of a live id counts as a write of its record (rev + 1), so that
-- a grant made before it is overtaken (see lib_pool.lua).
-- Returns {now, ""}. A record that does not decode is corrupt (see
-- lib_pool.lua): nothing is written.
--#include lib_publish
--#include lib_pool
local k = (#ARGV - 2) / 5

local old = {}
for i = 1, k do
  local id = ARGV[3 + 4 * (i - 1)]
  local r = record(id)
  if r and not isExpired(id) then old[i] = r end
end

for i = 1, k do
  local base = 3 + 4 * (i - 1)
  local id = ARGV[base]
  local created, ttl, interval = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local payload = ARGV[2 + 4 * k + i]
  if created == 0 then created = now end
  local r = old[i]
  if not r then
    if redis.call('HEXISTS', meta, id) == 1 then
      -- expired, not yet purged: purged now, added again as new
      redis.call('INCRBY', expired, 1)
    end
    r = {0, 0, 0, 0, -1, 0, 0, 0}
    redis.call('ZADD', ready, string.format('%.0f', us), id)
  elseif r[8] > 0 then
    -- retired: revived with a clear streak
    redis.call('ZADD', ready, string.format('%.0f', r[8]), id)
    r[6], r[7], r[8] = 0, 0, 0
  elseif not redis.call('ZSCORE', ready, id) then
    redis.call('ZADD', ready, string.format('%.0f', us), id)
  end
  redis.call('HSET', meta, id, encode({created, ttl, interval, r[4], r[5] + 1, r[6], r[7], 0}))
  if ttl > 0 then
    redis.call('ZADD', expiry, string.format('%.0f', created + ttl), id)
  else
    redis.call('ZREM', expiry, id)
  end
  if payload == '' then
    redis.call('HDEL', data, id)
  else
    redis.call('HSET', data, id, payload)
  end
end
publish(ARGV[1], ARGV[2])
return {now, ''}
