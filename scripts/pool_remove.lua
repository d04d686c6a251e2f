-- pool_remove: deletes containers. A container whose TTL had passed is
-- counted as purged on expiry (KEYS[5]), not as removed.
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
-- ARGV the ids (distinct)
-- Returns the number of live containers removed.
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2]) -- the ready set's clock
local now = math.floor(us / 1000) -- the records' clock
local removed, purged = 0, 0
for _, id in ipairs(ARGV) do
  local e = redis.call('ZSCORE', expiry, id)
  local was = redis.call('ZREM', ready, id) + redis.call('HDEL', meta, id)
  redis.call('ZREM', expiry, id)
  redis.call('HDEL', data, id)
  if was > 0 then
    if e and tonumber(e) <= now then purged = purged + 1 else removed = removed + 1 end
  end
end
if purged > 0 then redis.call('INCRBY', expired, purged) end
return removed
