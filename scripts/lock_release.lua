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
-- ARGV[4+i]: "" when the releasing client has no more waiters for KEYS[i];
--   otherwise it queues for its next turn (keeping its place if it is queued
--   already), behind the clients queued before, with this ticket: "-" for
--   none (its next waiter wants several keys), or "<lease ms>:<token>".
-- Returns: {freed, now, fence_1, ..., fence_n}: freed counts the keys deleted
--   or handed on (those that still held the token; a key that expired or was
--   taken over is left alone); now is the server time in ms; fence_i is the
--   fence of KEYS[i] when it was transferred to the releasing client's own
--   ticket, else 0. The other hand-offs are PUBLISHed on ARGV[2] (see
--   publishTurns), the releasing client's own left out.
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
local res, others, freed = {0, nowMs}, {}, 0
for i = 1, n do
  res[i + 2] = 0
  local k, fk, q, t, mine = KEYS[i], KEYS[n + i], KEYS[2 * n + i], KEYS[3 * n + i], ARGV[4 + i]
  -- One key: reads (rd) and the fence's INCR come before any write, and
  -- fail the script on data of another type.
  if rd('GET', k) == token then
    freed = freed + 1
    local h = rd('ZRANGE', q, 0, 0)[1]
    if h == client then
      -- Queued already (a stale entry): it queues again behind the others.
      dequeue(q, t, client)
      h = redis.call('ZRANGE', q, 0, 0)[1]
    end
    local myToken, myTTL = parseTicket(mine)
    local hToken, hTTL
    if h then
      hToken, hTTL = parseTicket(rd('HGET', t, h))
    end
    if not h and myToken then
      -- Nobody else waits: straight to this client's next waiter.
      res[i + 2] = transfer(k, fk, myToken, myTTL, grace)
    elseif hToken then
      -- To the next client's waiter; this client queues behind it.
      local fence = transfer(k, fk, hToken, hTTL, grace)
      dequeue(q, t, h)
      others[#others + 1] = {k, h, hToken, fence}
      if mine ~= '' then
        enqueue(q, t, client, myToken and mine or '')
      end
    else
      -- A turn: for a head without a ticket, or for anybody.
      local f = rd('GET', fk)
      if f and not string.match(f, '^%d+$') then
        error({err = 'XSYNC_CORRUPT ' .. fk .. ' is not a fencing counter'})
      end
      redis.call('DEL', k)
      if mine ~= '' then
        enqueue(q, t, client, myToken and mine or '')
      end
      local e = handOn(k, fk, q, t, grace, {})
      if e[2] == client and e[3] ~= '' then
        res[i + 2] = e[4]
      else
        others[#others + 1] = e
      end
    end
  end
end
res[1] = freed
publishTurns(channel, others)
return res
