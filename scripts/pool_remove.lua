-- pool_remove: deletes containers. A container whose TTL had passed is
-- counted as purged on expiry (KEYS[5]), not as removed.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV the ids (distinct)
-- Returns the number of live containers removed.
--#include lib_pool
local removed, purged = 0, 0
for _, id in ipairs(ARGV) do
  local gone = isExpired(id)
  local was = redis.call('ZREM', ready, id) + redis.call('HDEL', meta, id)
  redis.call('ZREM', expiry, id)
  redis.call('HDEL', data, id)
  if was > 0 then
    if gone then purged = purged + 1 else removed = removed + 1 end
  end
end
if purged > 0 then redis.call('INCRBY', expired, purged) end
return removed
