-- lib_lock: shared by the lock scripts, which include it with
-- "--#include lib_lock".
-- Turn queues: one ZSET of client ids per lock key, oldest first. The head
-- of a queue whose turn has begun has for score minus the server time (ms)
-- at which it began; every other member has a positive score.
--
-- Before anything is written, a script checks its keys with checkKeys:
-- data xsync did not write fails it with an error reply "XSYNC_CORRUPT
-- <what>", so that it never half-applies.

-- checkKeys fails the script unless each of the keys KEYS[from..to] is of
-- type want ("string" or "zset") or absent; with counter, the strings must
-- be integers (fencing counters).
local function checkKeys(from, to, want, counter)
  for i = from, to do
    local ty = redis.call('TYPE', KEYS[i])['ok']
    if ty ~= 'none' and ty ~= want then
      error({err = 'XSYNC_CORRUPT ' .. KEYS[i] .. ' is a ' .. ty .. ', not a ' .. want})
    end
    if counter and ty == 'string' and not string.match(redis.call('GET', KEYS[i]), '^%d+$') then
      error({err = 'XSYNC_CORRUPT ' .. KEYS[i] .. ' is not a fencing counter'})
    end
  end
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A turn queue lives this long (ms) after its last arrival: long enough
-- for any wait, short enough that the queues of a crashed client go away.
local turnQueueLifeMs = 10 * 60 * 1000

-- enqueue puts client at the tail of turn queue q, behind everyone queued
-- before, unless it is queued already (it keeps its place); q then lives
-- turnQueueLifeMs.
local function enqueue(q, client)
  if not redis.call('ZSCORE', q, client) then
    local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')
    redis.call('ZADD', q, math.max(tonumber(last[2]) or 0, 0) + 1, client)
  end
  redis.call('PEXPIRE', q, turnQueueLifeMs)
end

-- giveTurn begins the turn of the head of queue q on the free key k, and
-- adds to turns, for publishTurns, k and that client ("" when none waits).
local function giveTurn(k, q, turns)
  local h = redis.call('ZRANGE', q, 0, 0)[1] or ''
  if h ~= '' then
    redis.call('ZADD', q, 'XX', -nowMs, h)
  end
  turns[#turns + 1] = #k .. ':' .. k .. #h .. ':' .. h
end

-- publishTurns publishes turns on channel, each string written as
-- <byte length>:<string>, one after the other; nothing when there are none.
local function publishTurns(channel, turns)
  if #turns > 0 then
    redis.call('PUBLISH', channel, table.concat(turns))
  end
end
