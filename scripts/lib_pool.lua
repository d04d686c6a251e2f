-- lib_pool: the opening of the pool scripts whose KEYS[1..5] are the
-- pool's keys below; they include it with "--#include lib_pool".
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2]) -- the ready set's clock
local now = math.floor(us / 1000) -- the records' clock

-- isExpired reports whether the TTL of container id has passed.
local function isExpired(id)
  local e = redis.call('ZSCORE', expiry, id)
  return e and tonumber(e) <= now
end

-- drop purges the containers ids, whose TTL has passed, and counts them.
local function drop(ids)
  redis.call('ZREM', ready, unpack(ids))
  redis.call('ZREM', expiry, unpack(ids))
  redis.call('HDEL', meta, unpack(ids))
  redis.call('HDEL', data, unpack(ids))
  redis.call('INCRBY', expired, #ids)
end

-- purgeIfExpired purges container id if its TTL has passed, and reports
-- whether it did.
local function purgeIfExpired(id)
  if isExpired(id) then
    drop({id})
    return true
  end
  return false
end

-- purgeExpired purges up to n of the containers whose TTL has passed.
local function purgeExpired(n)
  local old = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, n)
  if #old > 0 then drop(old) end
end
