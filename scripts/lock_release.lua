-- lock_release: give back the lock keys that still hold an owner token, and
-- hand each to the next client: transferred to the waiter whose ticket the
-- head of its turn queue filed, or a turn (see lib_lock.lua).
-- KEYS: the n lock keys of the lease, their n fencing counters, their n turn
--   queues and their n ticket hashes (KEYS[n+i], KEYS[2n+i] and KEYS[3n+i]
--   go with KEYS[i]).
-- ARGV[1]: the owner token.
-- ARGV[2]: the pub/sub channel of lock releases of this DB, or of the
--   keys' slot (see lib_publish).
-- ARGV[3]: the id of the releasing client.
-- ARGV[4]: the most (ms) a transferred key is held before its new holder
--   confirms it: a holder that died delays the key by no more.
-- ARGV[5]: two flags, as "0" to "3". 1 (crowded): the keys came to the
--   token by a transfer from another client's release, which queued that
--   client again (likely): the releasing client then queues first, and pops
--   the head after (the queue is not emptied and made anew, and keeps its
--   life); and it deletes a ticket of its own that the transfer left when it
--   does not queue again. 2 (keep): the releasing client's turn goes on
--   (one key, with a ticket in ARGV[6]): the key goes straight to that
--   ticket, and the clients queued keep their places and hear nothing.
-- ARGV[5+i]: "" when the releasing client has no more waiters for KEYS[i];
--   otherwise it queues for its next turn (keeping its place if it is queued
--   already), behind the clients queued before, with this ticket: "-" for
--   none (its next waiter wants several keys), or "<lease ms>:<token>".
-- Returns: {freed, now, fence_1, ..., fence_n}: freed counts the keys deleted
--   or handed on (those that still held the token; a key that expired or was
--   taken over is left alone); now is the server time in ms, 0 when no path
--   read it; fence_i is the fence of KEYS[i] when it was transferred to the
--   releasing client's own ticket, else 0. The other hand-offs are
--   PUBLISHed on ARGV[2] (see publishTurns), the releasing client's own
--   left out.
-- A transfer to the head of a queue leaves its ticket when the releasing
--   client queues again: the new holder's client replaces it when it queues
--   again, or deletes it when it releases (ARGV[5]); the hash's life bounds
--   it when that client is gone (see lib_lock).

-- The kept turn first (one key, flag 2, a ticket): three commands, run
-- before the libraries below are defined, which would cost this path more
-- than its commands do. Anything unusual (the key not held by the token,
-- a ticket that does not parse, a fence that is not a counter, a server
-- that refuses the write) falls through to the general path, which reads
-- the same data again and answers or fails as it always did: nothing is
-- written here before the INCR, and the SET after it cannot fail on data.
if #KEYS == 4 and (ARGV[5] == '2' or ARGV[5] == '3') then
  local ttl, nextToken = string.match(ARGV[6], '^(%d+):(.+)$')
  if nextToken and redis.pcall('GET', KEYS[1]) == ARGV[1] then
    local fence = redis.pcall('INCR', KEYS[2])
    if type(fence) == 'number' then
      redis.call('SET', KEYS[1], nextToken, 'PX', math.min(tonumber(ttl), tonumber(ARGV[4])))
      return {1, 0, fence}
    end
  end
end

--#include lib_publish
--#include lib_lock
local n = #KEYS / 4
if n > 1 then
  -- Several keys: every key is checked before the first is handed on.
  checkKeys(1, n, 'string')
  checkKeys(n + 1, 2 * n, 'string', true)
  checkKeys(2 * n + 1, 3 * n, 'zset')
  checkKeys(3 * n + 1, 4 * n, 'hash')
end
local token, channel, client, grace = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local flags = tonumber(ARGV[5]) or 0
local crowded, keep = flags % 2 == 1, flags >= 2
local res, others, freed = {0, 0}, {}, 0
for i = 1, n do
  res[i + 2] = 0
  local k, fk, q, t, mine = KEYS[i], KEYS[n + i], KEYS[2 * n + i], KEYS[3 * n + i], ARGV[5 + i]
  -- One key: what is read is checked as it is read (rd), and a write that
  -- can fail on data of another type (the fence's INCR, a ticket not read
  -- before) fails it after the queue's changes are undone: nothing is
  -- half-written.
  undoes = {}
  if rd('GET', k) == token then
    freed = freed + 1
    local myToken, myTTL = parseTicket(mine)
    if keep and myToken then
      -- This client's turn goes on: straight to its next waiter. The
      -- clients queued keep their places, and nothing is published. (The
      -- short path at the top does this; it is reached here only when
      -- that one fell through, for rd to report what is wrong.)
      res[i + 2] = rd('INCR', fk)
      redis.call('SET', k, myToken, 'PX', math.min(myTTL, grace))
    else
      local ticket = myToken and mine or ''
      -- A queue emptied and put back is made anew: it gets back a life.
      onFailure(function()
        if redis.call('PTTL', q) == -1 then
          redis.call('PEXPIRE', q, turnQueueKeepMs)
        end
      end)
      local joined, added = false, false
      if crowded and mine ~= '' then
        -- Another client likely queues: this client queues first.
        added = rd('ZADD', q, 'NX', arrival(), client) == 1
        joined = true
        if added then
          onFailure(function()
            redis.call('ZREM', q, client)
          end)
        end
      end
      -- pop takes the head out of the queue, to be put back on a failure.
      local function pop()
        local r = rd('ZPOPMIN', q)
        if r[1] then
          onFailure(function()
            redis.call('ZADD', q, r[2], r[1])
          end)
        end
        return r[1], tonumber(r[2])
      end
      local h, hs = pop()
      if h == client then
        -- Queued already (a stale entry), or just now with nobody before it:
        -- it queues again behind the others, if any.
        joined = false
        h, hs = pop()
      end
      local hToken, hTTL
      if h then
        hToken, hTTL = parseTicket(rd('HGET', t, h))
      end
      -- requeue queues this client again, with its next waiter's ticket. One
      -- that joined before the pop has its place: h was queued then.
      local function requeue()
        if joined then
          fileTicket(t, client, ticket)
          if added then
            keepQueue(q, hs)
          end
        else
          enqueue(q, t, client, ticket)
        end
      end
      if not h then
        -- The tickets were not read: a ticket filed is checked (rd) before
        -- the key changes.
        if mine == '-' then
          enqueue(q, t, client, '')
        end
        if myToken then
          -- Nobody else waits: straight to this client's next waiter.
          res[i + 2] = rd('INCR', fk)
          redis.call('SET', k, myToken, 'PX', math.min(myTTL, grace))
        elseif mine == '' then
          -- Nobody queues, this client neither: free for anybody.
          redis.call('DEL', k)
          others[#others + 1] = {k, '', '', ''}
        else
          -- This client's next waiter has no ticket: its turn.
          redis.call('DEL', k)
          others[#others + 1] = handOn(k, fk, q, t, grace, {})
        end
        if crowded and mine ~= '-' then
          -- The ticket the transfer left this client goes, once the key is
          -- handed on; a hash of another type holds none, and is left as it
          -- is.
          redis.pcall('HDEL', t, client)
        end
      elseif hToken then
        -- To the next client's waiter, which left the queue: the fence
        -- first. This client queues behind the others.
        local fence = rd('INCR', fk)
        redis.call('SET', k, hToken, 'PX', math.min(hTTL, grace))
        others[#others + 1] = {k, h, hToken, fence}
        if mine ~= '' then
          requeue()
        elseif crowded then
          redis.call('HDEL', t, h, client)
        else
          redis.call('HDEL', t, h)
        end
      else
        -- A head without a ticket: its turn begins (it goes back at the
        -- head, stamped). No fence is counted: nobody gets the key.
        redis.call('DEL', k)
        redis.call('ZADD', q, -now(), h)
        if mine ~= '' then
          requeue()
        elseif crowded then
          redis.call('HDEL', t, client)
        end
        others[#others + 1] = {k, h, '', ''}
      end
    end
  end
end
res[1] = freed
res[2] = clockMs or 0
publishTurns(channel, others)
return res
