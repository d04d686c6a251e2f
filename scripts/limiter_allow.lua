-- limiter_allow: GCRA (generic cell rate algorithm) for a batch of requests
-- on one key, served in order until the first one that is refused; the ones
-- after it are not tried, so that a small request never overtakes a big one.
-- Each step is the arithmetic of go-redis/redis_rate's allowN, on the same
-- stored value (the key's theoretical arrival time, TAT), so that a batch
-- decides what the same requests sent one by one to redis_rate would.
--
-- KEYS[1]  the key's TAT (STRING: seconds since 2017-01-01, a float)
-- ARGV[1]  burst (integer >= 1)
-- ARGV[2]  rate: events per period (integer >= 1)
-- ARGV[3]  period in seconds (float > 0)
-- ARGV[3+i] the cost of request i (integer >= 1)
-- Returns {r1, r2, ...}, one ri per request tried: every served request,
--   then the first refused one, if any. ri is
--   {allowed, remaining, retry_after, reset_after}: allowed is the cost when
--   served, 0 when refused; remaining is how many events could still be
--   allowed now (an integer; redis_rate's is sometimes one less, see below); retry_after and reset_after are seconds as
--   strings ("-1" for the retry_after of a served request).
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])

-- the time between two events, and how far ahead of now the TAT may run
local emission_interval = period / rate
local burst_offset = emission_interval * burst

-- now in seconds since 2017-01-01, as redis_rate counts it: a double then
-- keeps microseconds exact until 2048
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)

local tat = redis.call('GET', key)
if not tat then
  tat = now
else
  tat = tonumber(tat)
end

local out = {}
local new_tat = nil
for i = 4, #ARGV do
  local cost = tonumber(ARGV[i])
  tat = math.max(tat, now)
  local next_tat = tat + emission_interval * cost
  -- the request fits when its TAT, less the burst, is not in the future
  local allow_at = next_tat - burst_offset
  local diff = now - allow_at
  local remaining = diff / emission_interval
  if remaining < 0 then
    out[#out + 1] = {0, 0, tostring(diff * -1), tostring(tat - now)}
    break
  end
  tat = next_tat
  new_tat = next_tat
  -- redis_rate truncates remaining as it is, and the rounding of now (a
  -- double: about 6e-8s at this size) often makes it one short (4.9999999
  -- is 4); a microsecond of slack counts the events that are there
  out[#out + 1] = {cost, math.floor((diff + 0.000001) / emission_interval), tostring(-1), tostring(next_tat - now)}
end

if new_tat ~= nil then
  local reset_after = new_tat - now
  if reset_after > 0 then
    redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
  end
end
return out
