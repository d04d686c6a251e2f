-- pool_stats: counts a pool's containers, after purging up to ARGV[1] whose
-- TTL has passed (counted in KEYS[5]). When more than that had expired, the
-- ones left are not counted as live; they may be counted as retired.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- KEYS[6] waiting: HASH client id -> "count:untilMs" (see pool_waiting.lua)
-- ARGV[1] purge batch size
-- ARGV[2] the reading client's id: its entry is not counted
-- Returns {nowUs, total, ready, nextReadyUs (-1 when none is in the ready
-- set), expired, retired, waiting}: total counts retired containers, ready
-- does not; waiting sums the other clients' entries that have not ended.
--#include lib_pool
do
  local ty = redis.call('TYPE', KEYS[6])['ok']
  if ty ~= 'none' and ty ~= 'hash' then corrupt(KEYS[6] .. ' is a ' .. ty .. ', not a hash') end
end
purgeExpired(tonumber(ARGV[1]))
local left = redis.call('ZCOUNT', expiry, '-inf', now) -- expired, not yet purged
local held = redis.call('HLEN', meta)
local inReady = redis.call('ZCARD', ready)
local total = held - left
local retired = held - inReady -- every container is in ready or retired
local readyNow = redis.call('ZCOUNT', ready, '-inf', us) - left
if readyNow < 0 then readyNow = 0 end
if retired > total then retired = total end
local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
local nextAt = -1
if #first > 0 then nextAt = tonumber(first[2]) end
local waiting = 0
local entries = redis.call('HGETALL', KEYS[6]) -- one per client: small
for i = 1, #entries, 2 do
  local n, untilMs = string.match(entries[i + 1], '^(%d+):(%d+)$')
  if n and entries[i] ~= ARGV[2] and (tonumber(untilMs) == 0 or tonumber(untilMs) > now) then
    waiting = waiting + tonumber(n)
  end
end
return {us, total, readyNow, nextAt, tonumber(redis.call('GET', expired) or '0'), retired, waiting}
