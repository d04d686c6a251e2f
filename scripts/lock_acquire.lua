-- lock_acquire: take every lock key for one owner token, or none of them.
-- KEYS: the n lock keys, then their n fencing counters (KEYS[n+i] counts KEYS[i]).
-- ARGV[1]: the owner token (random, one per acquisition).
-- ARGV[2]: the lease length in milliseconds (integer >= 1).
-- Returns:
--   {1, fence_1, ..., fence_n} when the token now holds every key. Each key
--     that was free got the token with the lease length and its fencing
--     counter incremented (counters never expire and never go back). A key
--     that already held the token (a retried call whose answer was lost)
--     only has its lease length renewed and returns its current counter, so
--     a retry by the same token succeeds again without a new fence.
--   {0, pttl} when another owner holds at least one key: pttl is the largest
--     remaining time to live in milliseconds of the keys that block, or -1
--     when one of them never expires. Nothing is written then.
local n = #KEYS / 2
local token = ARGV[1]
local ttl = tonumber(ARGV[2])

local held = {}
local blocked, wait = false, 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v == token then
    held[i] = true
  elseif v then
    blocked = true
    local p = redis.call('PTTL', KEYS[i])
    if p < 0 then
      wait = -1
    elseif wait >= 0 and p > wait then
      wait = p
    end
  end
end
if blocked then
  return {0, wait}
end

local res = {1}
for i = 1, n do
  if held[i] then
    redis.call('PEXPIRE', KEYS[i], ttl)
    res[i + 1] = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  else
    redis.call('SET', KEYS[i], token, 'PX', ttl)
    res[i + 1] = redis.call('INCR', KEYS[n + i])
  end
end
return res
