-- pool_get: reads one container. A container whose TTL has passed is purged
-- (and counted in KEYS[5]) and not found.
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
-- ARGV[1] the id
-- Returns {now, 1, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount,
-- data} when found, {now, 0} when not, {now, 2} when its record does not
-- decode.
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
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
  return {now, 0}
end
local raw = redis.call('HGET', meta, id)
local score = redis.call('ZSCORE', ready, id)
if not raw and not score then return {now, 0} end
if not raw or not score then return {now, 2} end
local c, ttl, iv, u = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
if not c then return {now, 2} end
return {now, 1, tonumber(c), tonumber(ttl), tonumber(iv), tonumber(score), tonumber(u),
  redis.call('HGET', data, id) or ''}
