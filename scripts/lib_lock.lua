-- lib_lock: shared by the lock scripts, which include it with
-- "--#include lib_lock".
-- Turn queues: one ZSET of client ids per lock key, oldest first. The head
-- of a queue whose turn has begun has for score minus the server time (ms)
-- at which it began; every other member has for score the server time (µs)
-- at which it queued.
-- Tickets: one HASH per lock key, beside its turn queue: a queued client's
-- next waiter for the key, "<lease ms>:<owner token>". A key freed while its
-- queue's head has a ticket is transferred to that token at once (see
-- handOn); a head without one (its waiter wants several keys) gets a turn.
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

-- rd runs a command that fails only on data of another type than xsync
-- writes (a read, or an INCR before any write): that data fails the script
-- as checkKeys does, before anything is written.
local function rd(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    error({err = 'XSYNC_CORRUPT ' .. r.err})
  end
  return r
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- arrival is the score of a client that queues now: the server time in
-- microseconds, so that the queue is in order of arrival.
local arrival = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- A turn queue lives this long (ms) after its last arrival: long enough
-- for any wait, short enough that the queues of a crashed client go away.
local turnQueueLifeMs = 10 * 60 * 1000

-- enqueue puts client at the tail of turn queue q, behind everyone queued
-- before, unless it is queued already (it keeps its place), and files its
-- ticket in t ("" for none); q and t then live turnQueueLifeMs.
local function enqueue(q, t, client, ticket)
  redis.call('ZADD', q, 'NX', arrival, client)
  redis.call('PEXPIRE', q, turnQueueLifeMs)
  if ticket ~= '' then
    redis.call('HSET', t, client, ticket)
    redis.call('PEXPIRE', t, turnQueueLifeMs)
  else
    redis.call('HDEL', t, client)
  end
end

-- dequeue takes client out of turn queue q and its ticket out of t.
local function dequeue(q, t, client)
  redis.call('ZREM', q, client)
  redis.call('HDEL', t, client)
end

-- parseTicket reads a ticket: the token and the lease length in ms, or nil.
local function parseTicket(ticket)
  if not ticket then
    return nil
  end
  local ttl, token = string.match(ticket, '^(%d+):(.+)$')
  return token, tonumber(ttl)
end

-- transfer sets the free key k to token for ttl ms, grace ms at most (until
-- its new holder confirms it), and returns its next fence (counter fk). A
-- counter that is not one fails the script before this writes anything.
local function transfer(k, fk, token, ttl, grace)
  local fence = rd('INCR', fk)
  redis.call('SET', k, token, 'PX', math.min(ttl, grace))
  return fence
end

-- handOn hands the free key k (fencing counter fk) to the head of queue q.
-- A head with a ticket in t is the new holder at once: k holds its token
-- for its lease, at most grace ms until it confirms with a renewal, so that
-- a holder that died keeps it no longer than that; the fence is counted,
-- and the head leaves the queue. A head without
-- a ticket gets its turn. Adds to out, for publishTurns, the entry
-- {k, head ("" when none waits), token, fence} (token and fence "" for a
-- turn), and returns it.
local function handOn(k, fk, q, t, grace, out)
  local h = redis.call('ZRANGE', q, 0, 0)[1] or ''
  local e = {k, h, '', ''}
  if h ~= '' then
    local token, ttl = parseTicket(redis.call('HGET', t, h))
    if token then
      e[3], e[4] = token, transfer(k, fk, token, ttl, grace)
      dequeue(q, t, h)
    else
      redis.call('ZADD', q, 'XX', -nowMs, h)
    end
  end
  out[#out + 1] = e
  return e
end

-- publishTurns publishes on channel the server time (ms) then the entries
-- of handOn, each string written as <byte length>:<string>, one after the
-- other; nothing when there are none.
local function publishTurns(channel, entries)
  if #entries == 0 then
    return
  end
  local now = tostring(nowMs)
  local parts = {#now .. ':' .. now}
  for _, e in ipairs(entries) do
    for j = 1, 4 do
      local v = tostring(e[j])
      parts[#parts + 1] = #v .. ':' .. v
    end
  end
  publish(channel, table.concat(parts))
end
