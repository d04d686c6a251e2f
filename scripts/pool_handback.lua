-- pool_handback: gives back containers of grants, by the grant records
-- pool_take left: grants nobody received (a cancelled waiter, a lost
-- answer) or containers returned unused (Pool.Return). Each container that
-- nobody overtook since the take (see overtaken in lib_pool.lua) is
-- restored as it was before the take (NextAvailable and UsageCount); one
-- that was overtaken keeps its NextAvailable, and, for grants nobody
-- received (ARGV[3] = "1"), loses the use the grant counted (UsageCount -
-- 1): UsageCount counts the grants that reached a caller. What is given
-- back leaves its record, so giving it back twice does nothing. Publishes
-- the pool's name when a container was given back, so that waiters of
-- every client wake.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- KEYS[5+i] grant record i (see readGrant in lib_pool.lua)
-- ARGV[1] channel to publish on (see lib_publish)
-- ARGV[2] the pool's name (the message)
-- ARGV[3] "1" for grants nobody received, "0" for containers returned unused
-- ARGV[3+i] the ids of grant i to give back, each written as
--   <byte length>:<id>, one after the other; "" (or no ARGV) for all
-- Returns {back, left}: the containers given back, and those left as they
-- were because they were overtaken or their grant record is gone.
--#include lib_publish
--#include lib_pool

-- wanted decodes the id list of ARGV[3+i]; nil means every id.
local function wanted(s)
  if not s or s == '' then return nil end
  local set, pos = {}, 1
  while pos <= #s do
    local colon = string.find(s, ':', pos, true)
    local n = colon and tonumber(string.sub(s, pos, colon - 1))
    if not n then corrupt('hand-back id list') end
    set[string.sub(s, colon + 1, colon + n)] = true
    pos = colon + n + 1
  end
  return set
end

local grants = {}
for i = 6, #KEYS do
  grants[#grants + 1] = {KEYS[i], readGrant(KEYS[i]), wanted(ARGV[3 + i - 5])}
end
local back, asked = 0, 0
for _, g in ipairs(grants) do
  local key, grant, ids = g[1], g[2], g[3]
  if ids then
    for _ in pairs(ids) do asked = asked + 1 end
  elseif grant then
    asked = asked + #grant / grantWidth
  end
  if grant then
    local give, keep = {}, {}
    for j = 1, #grant, grantWidth do
      local into = keep
      if not ids or ids[grant[j]] then into = give end
      for k = j, j + grantWidth - 1 do into[#into + 1] = grant[k] end
    end
    if #keep == 0 then
      redis.call('DEL', key)
    else
      redis.call('SET', key, cmsgpack.pack(keep), 'KEEPTTL')
    end
    if #give > 0 then back = back + undo(give, ARGV[3] == '1') end
  end
end
if back > 0 then
  publish(ARGV[1], ARGV[2])
end
return {back, asked - back}
