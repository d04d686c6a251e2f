-- sem_refresh: extends a lease of permits, if it is still running.
-- KEYS[1..5] the semaphore's keys (see lib_sem.lua)
-- ARGV[1] token, ARGV[2] new lease length (ms, >= 1)
-- Returns 1 when the token's lease now ends ARGV[2] ms from now; 0 when it
--   had ended (its permits are given back) or the token held none.
--#include lib_sem
local now = now_ms()
local expiry = redis.call('ZSCORE', holders, ARGV[1])
if not expiry then
  return 0
end
if tonumber(expiry) <= now then
  redis.call('ZREM', holders, ARGV[1])
  redis.call('HDEL', held, ARGV[1])
  return 0
end
redis.call('ZADD', holders, 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
