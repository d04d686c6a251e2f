-- pool_take: hands out containers to a batch of requests, served in order.
-- Each request is all-or-nothing. An "ask" request gets the n ready live
-- containers with the earliest next-available time; each gets
-- NextAvailable = now + Interval and UsageCount + 1. A "random" request gets
-- n distinct live containers at random, ready or not: UsageCount + 1,
-- NextAvailable unchanged. A request that cannot be served changes nothing.
--
-- Fairness: a request that is not served may be bypassed by later requests
-- of the batch only while its bypass budget lasts; each later request served
-- spends one from the budget of every earlier request still waiting. Once a
-- waiting request's budget is spent, every later request is skipped. ARGV[3]
-- is what is left of the budgets of the requests waiting ahead of the batch.
--
-- Idempotency: a served request leaves a grant record under its own key
-- (KEYS[5+i]), kept ARGV[2] ms. A request whose record exists is not served
-- again: it gets the containers of its record, as they are now. So the caller
-- may resend a batch whose answer it lost, and hand a grant back by token
-- (pool_handback) even when it never saw the answer.
--
-- Containers whose TTL has passed are never handed out: up to ARGV[1] of them
-- are purged first (and up to ARGV[1] more when a request meets them), and
-- counted in KEYS[5].
--
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- KEYS[5+i] grant record of request i (STRING, msgpack {id, prev, next, ...})
-- ARGV[1] purge batch size
-- ARGV[2] grant record lifetime (ms)
-- ARGV[3] bypasses allowed before the first request (-1: no limit)
-- ARGV[1+3i], ARGV[2+3i], ARGV[3+3i]: request i's kind ("a" ask, "r"
--         random), n (>= 1), bypass budget (>= 0; -1: never holds others
--         back)
-- Returns {now, r1, r2, ...}, now the server time (µs), ri for request i:
--   {1, c1, c2, ...} served; each c is {id, createdMs, ttlMs, intervalMs,
--                    nextAvailableUs, usageCount, data}
--   {0, at}          not served; at is the earliest time (µs) it could be,
--                    -1 when the pool holds fewer than n live containers
--   {2}              skipped: an earlier request may not be bypassed any more
--   {3, id}          not served: the record of container id does not decode
--#include lib_pool
local batch = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local purgeLeft = batch

local function decode(raw)
  if not raw then return nil end
  local c, ttl, iv, u = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
  if not c then return nil end
  return {tonumber(c), tonumber(ttl), tonumber(iv), tonumber(u)}
end

local function encode(r)
  return string.format('%.0f:%.0f:%.0f:%.0f', r[1], r[2], r[3], r[4])
end

local function live()
  return redis.call('ZCARD', ready) - redis.call('ZCOUNT', expiry, '-inf', now)
end

-- The n ready live containers with the earliest next-available time; nil
-- and a retry time when there are not n of them.
local function pickReady(n)
  local picked = {}
  while #picked < n do
    local page = redis.call('ZRANGEBYSCORE', ready, '-inf', us, 'LIMIT', #picked, n - #picked)
    if #page == 0 then break end
    for _, id in ipairs(page) do
      if isExpired(id) then
        if purgeLeft <= 0 then return nil, us + 1000 end
        purgeLeft = purgeLeft - 1
        drop({id})
      else
        picked[#picked + 1] = id
      end
    end
  end
  if #picked == n then return picked end
  if live() < n then return nil, -1 end
  local nth = redis.call('ZRANGE', ready, n - 1, n - 1, 'WITHSCORES')
  local at = tonumber(nth[2])
  if at <= us then at = us + 1000 end
  return nil, at
end

-- n distinct live containers at random; nil and a retry time otherwise.
local function pickRandom(n)
  for _ = 1, 4 do
    if live() < n then return nil, -1 end
    local ids = redis.call('ZRANDMEMBER', ready, n)
    local gone = {}
    for _, id in ipairs(ids) do
      if isExpired(id) then gone[#gone + 1] = id end
    end
    if #gone == 0 then return ids end
    if #gone > purgeLeft then return nil, us + 1000 end
    purgeLeft = purgeLeft - #gone
    drop(gone)
  end
  return nil, us + 1000
end

local function view(id, r, nextAt)
  return {id, r[1], r[2], r[3], nextAt, r[4], redis.call('HGET', data, id) or ''}
end

-- Applies a take; every record is decoded before anything is written.
local function take(ids, random, grantKey)
  local recs = {}
  for i, id in ipairs(ids) do
    recs[i] = decode(redis.call('HGET', meta, id))
    if not recs[i] then return {3, id} end
  end
  local out, grant = {1}, {}
  for i, id in ipairs(ids) do
    local r = recs[i]
    local prev = tonumber(redis.call('ZSCORE', ready, id))
    local nextAt = prev
    if not random then
      nextAt = us + r[3] * 1000
      redis.call('ZADD', ready, string.format('%.0f', nextAt), id)
    end
    r[4] = r[4] + 1
    redis.call('HSET', meta, id, encode(r))
    out[#out + 1] = view(id, r, nextAt)
    grant[#grant + 1] = id
    grant[#grant + 1] = prev
    grant[#grant + 1] = nextAt
  end
  redis.call('SET', grantKey, cmsgpack.pack(grant), 'PX', life)
  return out
end

-- The grant already made for a request, as its containers are now; nil when
-- there is none.
local function granted(grantKey)
  local raw = redis.call('GET', grantKey)
  if not raw then return nil end
  local ok, grant = pcall(cmsgpack.unpack, raw)
  if not ok or type(grant) ~= 'table' then return nil end
  local out = {1}
  for i = 1, #grant, 3 do
    local id = grant[i]
    local score = redis.call('ZSCORE', ready, id)
    if score then
      local r = decode(redis.call('HGET', meta, id))
      if not r then return {3, id} end
      out[#out + 1] = view(id, r, tonumber(score))
    end
  end
  return out
end

-- Expired containers first, in one bounded batch.
purgeExpired(batch)

local results = {us}
local allowance = tonumber(ARGV[3]) -- grants that may still bypass waiting requests; -1: no limit
local k = (#ARGV - 3) / 3
for i = 1, k do
  local kind, n, budget = ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  local grantKey = KEYS[5 + i]
  local res = granted(grantKey)
  if not res then
    if allowance == 0 then
      res = {2}
    else
      local ids, at
      if kind == 'r' then ids, at = pickRandom(n) else ids, at = pickReady(n) end
      if ids then
        res = take(ids, kind == 'r', grantKey)
      else
        res = {0, at}
      end
    end
  end
  if res[1] == 1 then
    if allowance > 0 then allowance = allowance - 1 end
  elseif res[1] == 0 and res[2] >= 0 and budget >= 0 then
    if allowance < 0 or budget < allowance then allowance = budget end
  end
  results[#results + 1] = res
end
return results
