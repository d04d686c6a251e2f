-- pool_get: reads one container. A container whose TTL has passed is purged
-- (and counted in KEYS[5]) and not found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the id
-- Returns {now, 1, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount,
-- data} when found, {now, 0} when not, {now, 2} when its record does not
-- decode.
--#include lib_pool
local id = ARGV[1]
if purgeIfExpired(id) then return {now, 0} end
local raw = redis.call('HGET', meta, id)
local score = redis.call('ZSCORE', ready, id)
if not raw and not score then return {now, 0} end
if not raw or not score then return {now, 2} end
local c, ttl, iv, u = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
if not c then return {now, 2} end
return {now, 1, tonumber(c), tonumber(ttl), tonumber(iv), tonumber(score), tonumber(u),
  redis.call('HGET', data, id) or ''}
