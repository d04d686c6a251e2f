-- sem_available: the permits free now (leases that ran out give theirs
-- back first).
-- KEYS[1..5] the semaphore's keys (see lib_sem.lua)
-- ARGV[1] permits of the semaphore
-- Returns {free, queued}: the permits nobody holds (0 at least), and the
--   number of requests queued.
--#include lib_sem
local used = purge(now_ms())
return {math.max(0, tonumber(ARGV[1]) - used), redis.call('ZCARD', queue)}
