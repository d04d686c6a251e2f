-- limiter_refund: gives back the events of requests that were allowed but
-- that nobody received (a wait cancelled while its call was under way): the
-- key's TAT moves back by their cost, never before now.
--
-- KEYS[1]  the key's TAT (see limiter_allow.lua)
-- ARGV[1]  rate: events per period (integer >= 1)
-- ARGV[2]  period in seconds (float > 0)
-- ARGV[3]  the cost to give back (integer >= 1)
-- Returns 1 when the TAT moved back, 0 when the key was already back to its
--   full burst (nothing to give back).
local key = KEYS[1]
local emission_interval = tonumber(ARGV[2]) / tonumber(ARGV[1])
local cost = tonumber(ARGV[3])

local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)

local tat = tonumber(redis.call('GET', key))
if not tat or tat <= now then
  return 0
end
local new_tat = tat - emission_interval * cost
if new_tat <= now then
  redis.call('DEL', key)
else
  redis.call('SET', key, new_tat, 'EX', math.ceil(new_tat - now))
end
return 1
