-- pool_take: hands out containers to a batch of requests, served in order.
-- Each request is all-or-nothing. An "ask" request gets the n ready live
-- containers with the earliest next-available time; each gets
-- NextAvailable = now + Interval and UsageCount + 1. A "random" request gets
-- n distinct live containers at random, ready or not: UsageCount + 1,
-- NextAvailable unchanged. A request that cannot be served changes nothing.
-- Retired containers (see lib_pool.lua) are not in the ready set: no take
-- meets them, and they count neither as live nor towards a retry time.
--
-- Fairness: a request that is not served may be bypassed by later requests
-- of the batch only while its bypass budget lasts; each later request served
-- spends one from the budget of every earlier request still waiting. Once a
-- waiting request's budget is spent, every later request is skipped. ARGV[3]
-- is what is left of the budgets of the requests waiting ahead of the batch.
--
-- Idempotency: a served request leaves a grant record under its own key
-- (KEYS[5+i]), kept ARGV[2] ms, so that the caller may resend a batch whose
-- answer it lost, and hand a grant back by token (pool_handback) even when
-- it never saw the answer. A resent request whose grant nobody overtook
-- since (see overtaken in lib_pool.lua) gets it again, exactly as it was
-- made. A grant that was overtaken is void, and never handed to its caller:
-- its containers that nobody overtook are given back, its record deleted,
-- and the request is tried afresh when it waits ("w") and answered {4} when
-- it does not.
--
-- Containers whose TTL has passed are never handed out: up to ARGV[1] of them
-- are purged first (and up to ARGV[1] more when a request meets them), and
-- counted in KEYS[5].
--
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- KEYS[5+i] grant record of request i (see readGrant in lib_pool.lua)
-- ARGV[1] purge batch size
-- ARGV[2] grant record lifetime (ms)
-- ARGV[3] bypasses allowed before the first request (-1: no limit)
-- ARGV[4] channel to publish on (see lib_publish) when a void grant gave containers back
-- ARGV[5] the pool's name (the message)
-- ARGV[3+3i], ARGV[4+3i], ARGV[5+3i]: request i's kind ("a" ask, "r"
--         random; "aw", "rw" when it waits), n (>= 1), bypass budget (>= 0;
--         -1: never holds others back)
-- Returns {now, r1, r2, ...}, now the server time (µs), ri for request i:
--   {1, c1, c2, ...} served; each c is {id, createdMs, ttlMs, intervalMs,
--                    nextAvailableUs, usageCount, data, failures}
--   {0, at}          not served; at is the earliest time (µs) it could be,
--                    -1 when the pool holds fewer than n live containers
--                    that are not retired
--   {2}              skipped: an earlier request may not be bypassed any more
--   {4}              not served: its grant was overtaken (one-shot requests)
-- Corrupt data (see lib_pool.lua) fails the script before anything is
-- written, or, met by a request after others were served, fails that
-- request before it writes: {3, what}.
--#include lib_publish
--#include lib_pool
local batch = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local purgeLeft = batch

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
  local enough = holds(n)
  if enough == false then return nil, -1 end
  if enough == nil then return nil, us + 1000 end -- expired ones left to purge
  local nth = redis.call('ZRANGE', ready, n - 1, n - 1, 'WITHSCORES')
  local at = tonumber(nth[2])
  if at <= us then at = us + 1000 end
  return nil, at
end

-- n distinct live containers at random; nil and a retry time otherwise.
local function pickRandom(n)
  for _ = 1, 4 do
    local enough = holds(n)
    if enough == false then return nil, -1 end
    if enough == nil then return nil, us + 1000 end -- expired ones left to purge
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
  return {id, r[1], r[2], r[3], nextAt, r[4], redis.call('HGET', data, id) or '', r[6]}
end

-- Applies a take; every record is decoded before anything is written.
local function take(ids, random, grantKey)
  local raws, recs = {}, {}
  for i, id in ipairs(ids) do
    raws[i] = redis.call('HGET', meta, id)
    recs[i] = decode(raws[i])
    if not recs[i] then return {3, 'container "' .. id .. '": record does not decode'} end
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
    r[4], r[5] = r[4] + 1, r[5] + 1
    local rec = encode(r)
    redis.call('HSET', meta, id, rec)
    out[#out + 1] = view(id, r, nextAt)
    for _, v in ipairs({id, raws[i], prev, rec, nextAt}) do grant[#grant + 1] = v end
  end
  redis.call('SET', grantKey, cmsgpack.pack(grant), 'PX', life)
  return out
end

-- resend answers a request whose grant g (at grantKey) was made by an
-- earlier call: the grant as it was made, when nobody overtook it; else nil
-- after the grant is given back and deleted (see the header).
local gaveBack = false -- a void grant gave containers back: wake the waiters
local function resend(g, grantKey)
  local out = {1}
  for j = 1, #g, grantWidth do
    local id, rec, score = g[j], g[j + 3], g[j + 4]
    if overtaken(id, rec, score) then
      if undo(g, true) > 0 then gaveBack = true end
      redis.call('DEL', grantKey)
      return nil
    end
    local r = decode(rec)
    if not r then return {3, grantKey .. ': record does not decode'} end
    out[#out + 1] = view(id, r, tonumber(score))
  end
  return out
end

-- A replica (a client still pointed at a master just demoted) refuses this
-- write, a no-op on a master (the pool's keys never expire): the take fails
-- as Redis unavailable and is tried again, rather than reading the
-- replica's data, finding fewer containers than asked (none, when it
-- came back empty) and leaving its waiters to wait for a Put.
redis.call('PERSIST', meta)

-- Every grant record is read before anything is written.
local k = (#ARGV - 5) / 3
local grants = {}
for i = 1, k do
  grants[i] = readGrant(KEYS[5 + i]) or false
end

-- Expired containers first, in one bounded batch.
purgeExpired(batch)

local results = {us}
local allowance = tonumber(ARGV[3]) -- grants that may still bypass waiting requests; -1: no limit
for i = 1, k do
  local kind, n, budget = ARGV[3 * i + 3], tonumber(ARGV[3 * i + 4]), tonumber(ARGV[3 * i + 5])
  local grantKey = KEYS[5 + i]
  local random, waits = string.sub(kind, 1, 1) == 'r', string.sub(kind, 2, 2) == 'w'
  local res
  if grants[i] then
    res = resend(grants[i], grantKey)
    if not res and not waits then res = {4} end
  end
  if not res then
    if allowance == 0 then
      res = {2}
    else
      local ids, at
      if random then ids, at = pickRandom(n) else ids, at = pickReady(n) end
      if ids then
        res = take(ids, random, grantKey)
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
if gaveBack then publish(ARGV[4], ARGV[5]) end
return results
