-- lock_release: give back the lock keys that still hold an owner token, and
-- hand each to the next client: transferred to the waiter whose ticket the
-- head of its turn queue filed, or a turn (see lib_lock.lua).
-- KEYS: the n lock keys of the lease, their n fencing counters, their n turn
--   queues and their n ticket hashes (KEYS[n+i], KEYS[2n+i] and KEYS[3n+i]
--   go with KEYS[i]).
-- ARGV[1]: the owner token.
-- ARGV[2]: the pub/sub channel of lock releases of this DB.
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
  -- One key: what is read is checked as it is read (rd); the head leaves
  -- the queue at once (ZPOPMIN), and is put back should the fence's INCR,
  -- the first write that can fail, fail on data of another type: nothing
  -- is half-written.
  if rd('GET', k) == token then
    freed = freed + 1
    local taken = {}
    local function pop()
      local r = rd('ZPOPMIN', q)
      if r[1] then
        taken[#taken + 1] = {r[2], r[1]}
      end
      return r[1]
    end
    -- chk is rd for the commands after a pop: a failure puts back first.
    local function chk(...)
      local r = redis.pcall(...)
      if type(r) == 'table' and r.err then
        for j = #taken, 1, -1 do
          redis.call('ZADD', q, taken[j][1], taken[j][2])
        end
        error({err = 'XSYNC_CORRUPT ' .. r.err})
      end
      return r
    end
    local h = pop()
    local stale = h == client
    if stale then
      -- Queued already (a stale entry): it queues again behind the others.
      h = pop()
    end
    local myToken, myTTL = parseTicket(mine)
    local hToken, hTTL
    if h then
      hToken, hTTL = parseTicket(chk('HGET', t, h))
    elseif n == 1 and (stale or mine ~= '' and not myToken) then
      -- The tickets are written below without having been read.
      local ty = chk('TYPE', t)['ok']
      if ty ~= 'none' and ty ~= 'hash' then
        chk('HGET', t, client) -- fails, and puts back
      end
    end
    local fence
    if hToken or not h and myToken then
      -- A transfer: the fence first.
      fence = chk('INCR', fk)
    end
    if stale then
      redis.call('HDEL', t, client)
    end
    if not h and myToken then
      -- Nobody else waits: straight to this client's next waiter.
      redis.call('SET', k, myToken, 'PX', math.min(myTTL, grace))
      res[i + 2] = fence
    elseif hToken then
      -- To the next client's waiter, which left the queue; this client
      -- queues behind the others.
      redis.call('SET', k, hToken, 'PX', math.min(hTTL, grace))
      redis.call('HDEL', t, h)
      others[#others + 1] = {k, h, hToken, fence}
      if mine ~= '' then
        enqueue(q, t, client, myToken and mine or '')
      end
    elseif not h and mine == '' then
      -- Nobody queues, this client neither: free for anybody.
      redis.call('DEL', k)
      others[#others + 1] = {k, '', '', ''}
    elseif h then
      -- A head without a ticket: its turn begins (it goes back at the
      -- head, stamped). No fence is counted: nobody gets the key.
      redis.call('DEL', k)
      redis.call('ZADD', q, -nowMs, h)
      if mine ~= '' then
        enqueue(q, t, client, myToken and mine or '')
      end
      others[#others + 1] = {k, h, '', ''}
    else
      -- This client's next waiter has no ticket: its turn.
      redis.call('DEL', k)
      enqueue(q, t, client, '')
      local e = handOn(k, fk, q, t, grace, {})
      others[#others + 1] = e
    end
  end
end
res[1] = freed
publishTurns(channel, others)
return res
