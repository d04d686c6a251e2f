-- pool_list: one page of a pool's live containers, retired ones included,
-- for inspection. It writes nothing: containers whose TTL has passed are
-- skipped, not purged. The page is one HSCAN step over the records (meta),
-- which hold every container, retired or not (retired ones are not in the
-- ready set), so a caller that follows the cursor to "0" sees every
-- container that was in the pool the whole time, possibly twice.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the HSCAN cursor ("0" to begin)
-- ARGV[2] the HSCAN COUNT hint (the page's size, roughly)
-- Returns {cursor, c1, c2, ...}, cursor "0" after the last page; each c is
--   {id, createdMs, ttlMs, intervalMs, nextAvailableUs, usageCount, data,
--   failures, retired (1 or 0)}. A record that does not decode, or one that
--   disagrees with the ready set, is corrupt (see lookup in lib_pool.lua).
--#include lib_pool
local page = redis.call('HSCAN', meta, ARGV[1], 'COUNT', tonumber(ARGV[2]))
local out = {page[1]}
local fields = page[2]
for i = 1, #fields, 2 do
  local id = fields[i]
  if not isExpired(id) then
    -- not expired: lookup purges nothing, and the script writes nothing
    local r, nextAt = lookup(id)
    local retired = 0
    if r[8] > 0 then retired = 1 end
    out[#out + 1] = {id, r[1], r[2], r[3], nextAt, r[4], redis.call('HGET', data, id) or '', r[6], retired}
  end
end
return out
