-- pool_cooldown: pushes a container's NextAvailable to at least now + d
-- (never earlier than it is: 1µs later when it is later already), then
-- publishes the pool's name. A container
-- whose TTL has passed is purged (counted in KEYS[5]) and not found.
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
-- ARGV[1] channel to publish on
-- ARGV[2] the pool's name (the message)
-- ARGV[3] the id
-- ARGV[4] d (µs, >= 0)
-- Returns {now, nextAvailableUs}, or {now, -1} when the id is not found.
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[3]
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2]) -- the ready set's clock
local now = math.floor(us / 1000) -- the records' clock
local e = redis.call('ZSCORE', expiry, id)
if e and tonumber(e) <= now then
  redis.call('ZREM', ready, id)
  redis.call('ZREM', expiry, id)
  redis.call('HDEL', meta, id)
  redis.call('HDEL', data, id)
  redis.call('INCRBY', expired, 1)
  return {now, -1}
end
local score = redis.call('ZSCORE', ready, id)
if not score then return {now, -1} end
-- NextAvailable always moves, if only by 1µs when it is later than now + d
-- already: pool_handback leaves a NextAvailable that moved since the take it
-- undoes, so that handing back a grant nobody received cannot undo this
-- Cooldown.
local nextAt = math.max(tonumber(score) + 1, us + tonumber(ARGV[4]))
redis.call('ZADD', ready, string.format('%.0f', nextAt), id)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {now, nextAt}
