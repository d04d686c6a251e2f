-- pool_list: one page of a pool's live containers, for inspection. It
-- writes nothing: containers whose TTL has passed are skipped, not purged.
-- The page is one ZSCAN step over the ready set, so a caller that follows
-- the cursor to "0" sees every container that was in the pool the whole
-- time, possibly twice.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the ZSCAN cursor ("0" to begin)
-- ARGV[2] the ZSCAN COUNT hint (the page's size, roughly)
-- Returns {cursor, c1, c2, ...}, cursor "0" after the last page; each c is
--   {id, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount, data}.
--   A record that does not decode, or a container of the ready set without
--   one, is corrupt (see lib_pool.lua).
--#include lib_pool
local page = redis.call('ZSCAN', ready, ARGV[1], 'COUNT', tonumber(ARGV[2]))
local out = {page[1]}
local members = page[2]
for i = 1, #members, 2 do
  local id, score = members[i], members[i + 1]
  if not isExpired(id) then
    local r = record(id)
    if not r then corrupt('container "' .. id .. '": record and ready set disagree') end
    out[#out + 1] = {id, r[1], r[2], r[3], tonumber(score), r[4], redis.call('HGET', data, id) or ''}
  end
end
return out
