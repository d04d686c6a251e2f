-- lock_acquire: take every lock key for one owner token, or none of them.
-- Clients that wait for a key queue for their turn in its turn queue (a
-- sorted set of client ids, oldest first); a free key whose queue is not
-- empty is reserved for the client at the head of the queue.
-- KEYS: the n lock keys, then their n fencing counters, their n turn
--   queues and their n ticket hashes (KEYS[n+i] counts KEYS[i], KEYS[2n+i]
--   queues for it, KEYS[3n+i] holds the tickets of its queue).
-- ARGV[1]: the owner token (random, one per acquisition).
-- ARGV[2]: the lease length in milliseconds (integer >= 1).
-- ARGV[3]: the id of the calling client.
-- ARGV[4]: "1" to queue for the turn when blocked (a waiter), "0" not to (a try).
-- ARGV[5]: a client id whose turn is over: it did not come when its turn
--   came, so it is taken out of the queues' head; or "".
-- Returns:
--   {1, fence_1, ..., fence_n} when the token now holds every key. Each key
--     that was free got the token with the lease length and its fencing
--     counter incremented (counters never expire and never go back); the
--     caller left the turn queues. A key that already held the token (a
--     retried call whose answer was lost) only has its lease length renewed
--     and returns its current counter: a retry succeeds again, and the
--     lease runs from the retry. A retry that finds another key blocked
--     gives back the keys that still hold the token (and publishes them as
--     lock_release does): a lease is reported held only while every key
--     holds the token.
--   {0, pttl, reserved_by, now} when a key is held by another owner or reserved
--     for another client. pttl is the largest remaining time to live in ms
--     of the held keys that block, -1 when one of them never expires, -2
--     when no key is held, only reserved; reserved_by is the client a key is
--     reserved for, or ""; now is the server time in ms (0 when the path
--     did not read it: a try blocked by a holder). A waiter is queued
--     (once: it keeps its place) on each key that blocks it, with the ticket
--     ARGV[8]. A waiter whose turn came on a free key it cannot use now
--     (another key blocks) hands the key on to the next client, PUBLISHed as
--     lock_release does (on ARGV[6]).
-- ARGV[6]: the pub/sub channel of lock releases of this DB, or of the
--   keys' slot (see lib_publish).
-- ARGV[7]: the turn grace in ms: a turn on a free key that its client has not
--   taken after this long is over (the client died, or cannot use the key),
--   and goes to the next client, for waiters and tries alike.
-- ARGV[8]: the ticket a waiter files when it queues: "<lease ms>:<token>"
--   for a waiter of one key, so that a release transfers the key to it; ""
--   for none (a waiter of several keys gets turns).
-- ARGV[9]: the most (ms) a key handed on here is held before its new holder
--   confirms it (see lock_release).
-- Turns (see lib_lock.lua) begin when a release or a leave hands them out,
--   or when an attempt finds the key free (it expired) with a head whose
--   turn has not begun.
--#include lib_publish
--#include lib_lock
local n = #KEYS / 4
local token, ttl, client = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local queue, skip, channel = ARGV[4] == '1', ARGV[5], ARGV[6]
local grace, ticket, transferMs = tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])

-- Several keys are all checked before anything is written. One key is
-- checked as it is read (rd), and the keys a path has not read are checked
-- (need) before its first write: the acquisition of a free key nobody
-- queues for reads the key and the queue, checks the ticket hash, and
-- counts the fence before it writes anything else.
local checked = {}
if n > 1 then
  checkKeys(1, n, 'string')
  checkKeys(n + 1, 2 * n, 'string', true)
  checkKeys(2 * n + 1, 3 * n, 'zset')
  checkKeys(3 * n + 1, 4 * n, 'hash')
  for i = 1, 4 * n do
    checked[i] = true
  end
end
local kinds = {'string', 'string', 'zset', 'hash'}
-- need checks KEYS[i] (one key: i is 1 to 4), once.
local function need(i)
  if not checked[i] then
    checked[i] = true
    checkKeys(i, i, kinds[i], i == 2)
  end
end

local function head(q)
  local h = rd('ZRANGE', q, 0, 0)
  return h[1]
end

-- turnBegan returns when the turn of h, the head of q, began, and stamps it
-- now if it had not.
local function turnBegan(q, h)
  local s = tonumber(redis.call('ZSCORE', q, h))
  if s < 0 then
    return -s
  end
  redis.call('ZADD', q, 'XX', -now(), h)
  return now()
end

local state = {} -- 'mine', 'held', 'reserved', 'turn' (free, my turn) or 'free'
local blocked, wait, reservedBy = false, -2, ''
for i = 1, n do
  local v = rd('GET', KEYS[i])
  checked[i] = true
  if v == token then
    state[i] = 'mine'
  elseif v then
    state[i] = 'held'
    blocked = true
    local p = redis.call('PTTL', KEYS[i])
    if p < 0 then
      wait = -1
    elseif wait ~= -1 and p > wait then
      wait = p
    end
  else
    local q = KEYS[2 * n + i]
    local h = head(q)
    checked[2 * n + i] = true
    if h then
      -- Turns may be stamped or skipped, and the key taken: everything is
      -- checked before.
      need(2)
      need(4)
    end
    -- A turn that is over goes to the next client (whose turn begins now).
    while h and h ~= client and (h == skip or now() - turnBegan(q, h) > grace) do
      dequeue(q, KEYS[3 * n + i], h)
      h = head(q)
    end
    if h and h ~= client then
      state[i] = 'reserved'
      blocked = true
      reservedBy = h
    elseif h == client then
      state[i] = 'turn'
    else
      state[i] = 'free'
    end
  end
end

if blocked then
  -- Blocked: every key is checked, as for several keys, whether anything
  -- is written or not; a waiter of one key checks its queue and tickets
  -- as it queues (enqueue).
  need(2)
  if not queue or n > 1 then
    need(3)
    need(4)
  end
  local passed = {}
  for i = 1, n do
    local q, t = KEYS[2 * n + i], KEYS[3 * n + i]
    if state[i] == 'mine' then
      -- A resent attempt whose earlier grant another key no longer
      -- allows: what it still holds is given back, never reported held.
      redis.call('DEL', KEYS[i])
      handOn(KEYS[i], KEYS[n + i], q, t, transferMs, passed)
    elseif queue and (state[i] == 'held' or state[i] == 'reserved') then
      enqueue(q, t, client, ticket)
    elseif queue and state[i] == 'turn' then
      dequeue(q, t, client)
      handOn(KEYS[i], KEYS[n + i], q, t, transferMs, passed)
    end
  end
  publishTurns(channel, passed)
  return {0, wait, reservedBy, clockMs or 0}
end

local res = {1}
for i = 1, n do
  if state[i] == 'mine' then
    need(2)
    need(3)
    need(4)
    redis.call('PEXPIRE', KEYS[i], ttl)
    res[i + 1] = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  else
    need(4)
    -- The fence first: a counter that is not one fails the script before
    -- anything is written.
    res[i + 1] = rd('INCR', KEYS[n + i])
    redis.call('SET', KEYS[i], token, 'PX', ttl)
  end
  if state[i] ~= 'free' then
    -- A free key nobody queues for: this client is not queued, and a
    -- ticket it may have left is never read (see lib_lock).
    dequeue(KEYS[2 * n + i], KEYS[3 * n + i], client)
  end
end
return res
