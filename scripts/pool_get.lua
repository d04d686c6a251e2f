-- pool_get: reads one container. A container whose TTL has passed is purged
-- (and counted in KEYS[5]) and not found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the id
-- Returns {now, 1, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount,
-- data, failures, retired (1 or 0)} when found, {now, 0} when not. A record
-- that does not decode, or one that disagrees with the ready set, is
-- corrupt (see lookup in lib_pool.lua).
--#include lib_pool
local id = ARGV[1]
local r, nextAt = lookup(id)
if not r then return {now, 0} end
local retired = 0
if r[8] > 0 then retired = 1 end
return {now, 1, r[1], r[2], r[3], nextAt, r[4], redis.call('HGET', data, id) or '', r[6], retired}
