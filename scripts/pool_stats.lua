-- pool_stats: counts a pool's containers, after purging up to ARGV[1] whose
-- TTL has passed (counted in KEYS[5]). When more than that had expired, the
-- ones left are not counted as live.
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
-- ARGV[1] purge batch size
-- Returns {nowUs, total, ready, nextReadyUs (-1 when empty), expired}.
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2]) -- the ready set's clock
local now = math.floor(us / 1000) -- the records' clock
local old = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #old > 0 then
  redis.call('ZREM', ready, unpack(old))
  redis.call('ZREM', expiry, unpack(old))
  redis.call('HDEL', meta, unpack(old))
  redis.call('HDEL', data, unpack(old))
  redis.call('INCRBY', expired, #old)
end
local left = redis.call('ZCOUNT', expiry, '-inf', now)
local total = redis.call('ZCARD', ready) - left
local readyNow = redis.call('ZCOUNT', ready, '-inf', us) - left
if readyNow < 0 then readyNow = 0 end
local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
local nextAt = -1
if #first > 0 then nextAt = tonumber(first[2]) end
return {us, total, readyNow, nextAt, tonumber(redis.call('GET', expired) or '0')}
