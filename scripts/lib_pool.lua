-- lib_pool: the opening of the pool scripts whose KEYS[1..5] are the
-- pool's keys below; they include it with "--#include lib_pool".
-- KEYS[1] ready:   ZSET id -> next-available time (µs)
-- KEYS[2] expiry:  ZSET id -> expiry time (ms), containers with TTL > 0 only
-- KEYS[3] meta:    HASH id -> record
--                  "createdMs:ttlMs:intervalMs:usageCount:rev:failures:blocked:retired"
-- KEYS[4] data:    HASH id -> payload (absent when empty)
-- KEYS[5] expired: STRING, containers purged on expiry so far
-- rev counts the writes of a record (takes, Puts, hand-backs, Blocked
-- reports, retirements): with the ready score it tells whether a grant was
-- overtaken since (see overtaken).
-- failures is the streak of Failed and Blocked reports, blocked the Blocked
-- ones among them (see pool_report). retired is 0 for a container that may
-- be handed out; for a retired one it is the NextAvailable (µs) it had when
-- it was retired, kept for its revival by a Put: a retired container has no
-- ready score, so no take ever meets it, but it keeps its record, its data
-- and its expiry entry until its TTL ends. Every container of meta is
-- either in ready or retired (see lookup).
--
-- Before anything is written, the opening checks that every key is of its
-- type and the purge counter an integer: a script never half-applies on
-- data it did not write. Corrupt data fails the script with an error reply
-- "XSYNC_CORRUPT <what>", raised by corrupt() before any write.
local ready, expiry, meta, data, expired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

-- corrupt fails the script; call it only before the script's first write.
local function corrupt(what)
  error({err = 'XSYNC_CORRUPT ' .. what})
end

-- checkType fails the script unless key is of type want (or absent).
local function checkType(key, want)
  local ty = redis.call('TYPE', key)['ok']
  if ty ~= 'none' and ty ~= want then
    corrupt(key .. ' is a ' .. ty .. ', not a ' .. want)
  end
end

checkType(ready, 'zset')
checkType(expiry, 'zset')
checkType(meta, 'hash')
checkType(data, 'hash')
checkType(expired, 'string')
do
  local n = redis.call('GET', expired)
  if n and not string.match(n, '^%d+$') then corrupt(expired .. ' is not a count') end
end

local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2]) -- the ready set's clock
local now = math.floor(us / 1000) -- the records' clock

-- decode reads a record: {createdMs, ttlMs, intervalMs, usageCount, rev,
-- failures, blocked, retired}; nil when raw is nil or does not decode. A
-- record of the first five fields only (written before pools kept health)
-- reads as a container with no streak, not retired.
local function decode(raw)
  if not raw then return nil end
  local c, ttl, iv, u, rev, rest = string.match(raw, '^(%d+):(%d+):(%d+):(%d+):(%d+)(.*)$')
  if not c then return nil end
  local f, b, ret = '0', '0', '0'
  if rest ~= '' then
    f, b, ret = string.match(rest, '^:(%d+):(%d+):(%d+)$')
    if not f then return nil end
  end
  return {tonumber(c), tonumber(ttl), tonumber(iv), tonumber(u), tonumber(rev),
    tonumber(f), tonumber(b), tonumber(ret)}
end

-- encode writes a record read by decode.
local function encode(r)
  return string.format('%.0f:%.0f:%.0f:%.0f:%.0f:%.0f:%.0f:%.0f',
    r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
end

-- record decodes the record of container id; nil when there is none, and
-- corrupt() when it does not decode.
local function record(id)
  local raw = redis.call('HGET', meta, id)
  if not raw then return nil end
  local r = decode(raw)
  if not r then corrupt('container "' .. id .. '": record does not decode') end
  return r
end

-- isExpired reports whether the TTL of container id has passed.
local function isExpired(id)
  local e = redis.call('ZSCORE', expiry, id)
  return e and tonumber(e) <= now
end

-- drop purges the containers ids, whose TTL has passed, and counts them.
local function drop(ids)
  redis.call('ZREM', ready, unpack(ids))
  redis.call('ZREM', expiry, unpack(ids))
  redis.call('HDEL', meta, unpack(ids))
  redis.call('HDEL', data, unpack(ids))
  redis.call('INCRBY', expired, #ids)
end

-- purgeIfExpired purges container id if its TTL has passed, and reports
-- whether it did.
local function purgeIfExpired(id)
  if isExpired(id) then
    drop({id})
    return true
  end
  return false
end

-- purgeExpired purges up to n of the containers whose TTL has passed.
local function purgeExpired(n)
  local old = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, n)
  if #old > 0 then drop(old) end
end

-- lookup returns the record of container id and its NextAvailable (µs):
-- its ready score, or the time kept in the record when it is retired. nil
-- when the pool does not hold id; a container whose TTL has passed is
-- purged and not held. A record without its ready score (unless retired),
-- or a ready score without a record, is corrupt.
local function lookup(id)
  local r = record(id)
  local score = redis.call('ZSCORE', ready, id)
  if not r and not score then return nil end
  if not r or (score and r[8] > 0) or (not score and r[8] == 0) then
    corrupt('container "' .. id .. '": record and ready set disagree')
  end
  if purgeIfExpired(id) then return nil end
  if r[8] > 0 then return r, r[8] end
  return r, tonumber(score)
end

-- holds reports whether the pool holds at least n live containers that are
-- not retired: true or false, or nil when it cannot tell because containers
-- whose TTL has passed are left to purge (the ready set holds every
-- container not retired, expired or not; the expiry set also holds retired
-- ones).
local function holds(n)
  local most = redis.call('ZCARD', ready)
  if most < n then return false end
  if most - redis.call('ZCOUNT', expiry, '-inf', now) >= n then return true end
  return nil
end

-- Grant records (STRING, msgpack): for each container a take handed out,
-- five values: id, the record and ready score before the take, and the
-- record and ready score the take left.
local grantWidth = 5

-- readGrant decodes the grant record at key; nil when there is none, and
-- corrupt() when it is not one.
local function readGrant(key)
  checkType(key, 'string')
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local ok, g = pcall(cmsgpack.unpack, raw)
  local good = ok and type(g) == 'table' and #g > 0 and #g % grantWidth == 0
  for j = 1, good and #g or 0, grantWidth do
    good = good and type(g[j]) == 'string' and decode(g[j + 1]) and decode(g[j + 3])
      and tonumber(g[j + 2]) and tonumber(g[j + 4])
  end
  if not good then corrupt(key .. ' is not a grant record') end
  return g
end

-- overtaken reports whether the take that left record rec and ready score
-- score on container id was overtaken since: the container was taken
-- again, cooled down, re-Put, reported Blocked, retired, removed, or its
-- TTL has passed. A hand-back's UsageCount correction (see undo) does not
-- count: it keeps rev; nor do Succeeded and Failed reports that do not
-- retire: they change the streak alone, which undo keeps.
local function overtaken(id, rec, score)
  if isExpired(id) then return true end
  local cur, want = decode(redis.call('HGET', meta, id)), decode(rec)
  local s = redis.call('ZSCORE', ready, id)
  return not cur or not want or cur[5] ~= want[5] or not s or tonumber(s) ~= tonumber(score)
end

-- undo gives back the containers of grant g that nobody overtook, each as
-- it was before the take; it returns how many it gave back.
-- With uncount (grants nobody received), a container that was overtaken
-- loses the use the grant counted (UsageCount - 1), and gets its
-- NextAvailable back if nothing moved it since (a random take or a Put
-- overtook the grant, not a take, a Cooldown or a back-off).
local function undo(g, uncount)
  local back = 0
  for j = 1, #g, grantWidth do
    local id, prevRec, prevScore, rec, score = g[j], g[j + 1], g[j + 2], g[j + 3], g[j + 4]
    local r = not isExpired(id) and decode(redis.call('HGET', meta, id))
    if not overtaken(id, rec, score) then
      -- Since the take, only other hand-backs' UsageCount corrections
      -- and reports' streaks can have changed the record: keep them.
      r[4], r[5] = math.max(r[4] - 1, 0), decode(prevRec)[5]
      redis.call('HSET', meta, id, encode(r))
      redis.call('ZADD', ready, string.format('%.0f', prevScore), id)
      back = back + 1
    elseif uncount and r then
      if r[4] > 0 then
        r[4] = r[4] - 1
        redis.call('HSET', meta, id, encode(r))
      end
      -- Overtaken only by what leaves NextAvailable alone (a random take,
      -- a report): the unreceived grant's interval is given back too.
      local s = redis.call('ZSCORE', ready, id)
      if s and tonumber(s) == tonumber(score) then
        redis.call('ZADD', ready, string.format('%.0f', prevScore), id)
      end
    end
  end
  return back
end
