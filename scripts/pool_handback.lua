-- pool_handback: gives back the containers of grants that nobody received
-- or that were returned unused, by the grant records pool_take left. Each
-- container that nobody overtook since the take (see overtaken in
-- lib_pool.lua) is restored exactly as it was before the take
-- (NextAvailable and UsageCount); one that was overtaken keeps its
-- NextAvailable, and, for grants nobody received (ARGV[3] = "1"), loses the
-- use the grant counted (UsageCount - 1): UsageCount counts the grants that
-- reached a caller.
-- The records are deleted, so handing back twice does nothing. Publishes the
-- pool's name when a container was given back, so that waiters of every
-- client wake.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- KEYS[5+i] grant record i (see readGrant in lib_pool.lua)
-- ARGV[1] channel to publish on
-- ARGV[2] the pool's name (the message)
-- ARGV[3] "1" for grants nobody received, "0" for grants returned unused
-- Returns {back, overtaken}: the containers given back, and those left as
-- they were because they were overtaken.
--#include lib_pool
local grants = {}
for i = 6, #KEYS do
  grants[#grants + 1] = {KEYS[i], readGrant(KEYS[i])}
end
local back, total = 0, 0
for _, g in ipairs(grants) do
  if g[2] then
    redis.call('DEL', g[1])
    back = back + undo(g[2], ARGV[3] == '1')
    total = total + #g[2] / grantWidth
  end
end
if back > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return {back, total - back}
