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
-- A ticket is read only for the head of the queue, and every command that
-- puts a client into a queue writes or deletes its ticket in the same
-- script: the ticket of a client that is not queued is never read, and may
-- stay until its client files a new one, releases, or the hash expires.
--
-- Before anything is written, a script checks its keys with checkKeys or
-- as it reads them (rd): data xsync did not write fails it with an error
-- reply "XSYNC_CORRUPT <what>", so that it never half-applies. A write
-- that may fail on such data is made with rd too, once the writes before
-- it have said how to undo them (onFailure).

-- undoes holds what undoes the writes made so far that a failing rd must
-- take back, run last first.
local undoes = {}

-- onFailure registers f, run should a later rd fail.
local function onFailure(f)
  undoes[#undoes + 1] = f
end

-- notData are the errors a command meets whatever the data: the server
-- refuses writes now (a replica after a failover, OOM, a write quorum) or
-- is not ready. They are not corrupt data, and fail the script as they
-- are, so that the caller sees Redis unavailable and tries again.
local notData = {'READONLY', 'OOM', 'NOREPLICAS', 'MASTERDOWN', 'LOADING', 'BUSY', 'CLUSTERDOWN', 'TRYAGAIN', 'MISCONF'}

-- rd runs a command that fails only on data of another type than xsync
-- writes (a read, or a write of a type the script has not checked): that
-- data fails the script as checkKeys does, once the writes registered with
-- onFailure are undone. An error of notData fails it as it is.
local function rd(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    for j = #undoes, 1, -1 do
      undoes[j]()
    end
    local code = string.match(r.err, '^(%u+)')
    for _, c in ipairs(notData) do
      if code == c then
        error(r)
      end
    end
    error({err = 'XSYNC_CORRUPT ' .. r.err})
  end
  return r
end

-- checkCounter fails the script unless key is absent or an integer string
-- (a fencing counter): one GET.
local function checkCounter(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' and v.err or v and not string.match(v, '^%d+$') then
    error({err = 'XSYNC_CORRUPT ' .. key .. ' is not a fencing counter'})
  end
end

-- checkKeys fails the script unless each of the keys KEYS[from..to] is of
-- type want ("string", "zset" or "hash") or absent; with counter, they
-- must be fencing counters.
local function checkKeys(from, to, want, counter)
  for i = from, to do
    if counter then
      checkCounter(KEYS[i])
    else
      local ty = redis.call('TYPE', KEYS[i])['ok']
      if ty ~= 'none' and ty ~= want then
        error({err = 'XSYNC_CORRUPT ' .. KEYS[i] .. ' is a ' .. ty .. ', not a ' .. want})
      end
    end
  end
end

-- The server time, read (TIME) by the first path that needs it: ms, and µs
-- for arrivals.
local clockMs, clockUs

local function readClock()
  if not clockMs then
    local t = redis.call('TIME')
    clockMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    clockUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
end

-- now is the server time in ms.
local function now()
  readClock()
  return clockMs
end

-- arrival is the score of a client that queues now: the server time in
-- microseconds, so that the queue is in order of arrival.
local function arrival()
  readClock()
  return clockUs
end

-- A turn queue lives at least turnQueueLifeMs after its last arrival: long
-- enough for any wait, short enough that the queues of a crashed client go
-- away. An arrival sets it to turnQueueKeepMs, unless an arrival of the
-- same period of renewQueueUs (counted from the epoch) did (see keepQueue):
-- the first arrival of a period did, so it lives turnQueueLifeMs after any
-- arrival, and turnQueueKeepMs at most.
local turnQueueLifeMs = 10 * 60 * 1000
local renewQueueUs = 60 * 1000 * 1000
local turnQueueKeepMs = turnQueueLifeMs + renewQueueUs / 1000

-- A ticket hash lives ticketsLifeMs from its creation, and is never
-- extended: the tickets left by clients that are gone go with it. A ticket
-- lost so is a turn instead of a transfer.
local ticketsLifeMs = turnQueueLifeMs

-- keepQueue renews the life of queue q after an arrival, unless ref, the
-- score of a client that was in q when this one arrived, is an arrival of
-- the same period (q has been renewed in it since).
local function keepQueue(q, ref)
  local p = math.floor(arrival() / renewQueueUs)
  if not ref or ref <= 0 or math.floor(ref / renewQueueUs) ~= p then
    redis.call('PEXPIRE', q, turnQueueKeepMs)
  end
end

-- fileTicket writes client's ticket in t, or deletes it ("" for none). A
-- hash of another type fails the script (rd). A hash it makes lives
-- ticketsLifeMs.
local function fileTicket(t, client, ticket)
  if ticket == '' then
    rd('HDEL', t, client)
  elseif rd('HSET', t, client, ticket) == 1 and redis.call('HLEN', t) == 1 then
    redis.call('PEXPIRE', t, ticketsLifeMs)
  end
end

-- enqueue puts client at the tail of turn queue q, behind everyone queued
-- before, unless it is queued already (it keeps its place), and files its
-- ticket in t ("" for none). Data of another type under q or t fails the
-- script, with nothing written.
local function enqueue(q, t, client, ticket)
  local added = rd('ZADD', q, 'NX', arrival(), client)
  if added == 1 then
    onFailure(function()
      redis.call('ZREM', q, client)
    end)
  end
  fileTicket(t, client, ticket)
  if added == 1 then
    keepQueue(q, nil)
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
-- and the head leaves the queue and its ticket. A head without a ticket
-- gets its turn. Adds to out, for publishTurns, the entry {k, head (""
-- when none waits), token, fence} (token and fence "" for a turn), and
-- returns it.
local function handOn(k, fk, q, t, grace, out)
  local h = redis.call('ZRANGE', q, 0, 0)[1] or ''
  local e = {k, h, '', ''}
  if h ~= '' then
    local token, ttl = parseTicket(redis.call('HGET', t, h))
    if token then
      e[3], e[4] = token, transfer(k, fk, token, ttl, grace)
      dequeue(q, t, h)
    else
      redis.call('ZADD', q, 'XX', -now(), h)
    end
  end
  out[#out + 1] = e
  return e
end

-- publishTurns publishes on channel the server time (ms; "0" when no entry
-- is a transfer, which alone needs it) then the entries of handOn, each
-- string written as <byte length>:<string>, one after the other; nothing
-- when there are none.
local function publishTurns(channel, entries)
  if #entries == 0 then
    return
  end
  local date = '0'
  for _, e in ipairs(entries) do
    if e[3] ~= '' then
      date = tostring(now())
    end
  end
  local parts = {#date .. ':' .. date}
  for _, e in ipairs(entries) do
    for j = 1, 4 do
      local v = tostring(e[j])
      parts[#parts + 1] = #v .. ':' .. v
    end
  end
  publish(channel, table.concat(parts))
end
