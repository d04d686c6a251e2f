-- pool_get: reads one container. A container whose TTL has passed is purged
-- (and counted in KEYS[5]) and not found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the id
-- Returns {now, 1, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount,
-- data} when found, {now, 0} when not. A record that does not decode, or
-- one without its ready score, is corrupt (see lib_pool.lua).
--#include lib_pool
local id = ARGV[1]
local r = record(id)
local score = redis.call('ZSCORE', ready, id)
if not r and not score then return {now, 0} end
if not r or not score then corrupt('container "' .. id .. '": record and ready set disagree') end
if purgeIfExpired(id) then return {now, 0} end
return {now, 1, r[1], r[2], r[3], tonumber(score), r[4], redis.call('HGET', data, id) or ''}
