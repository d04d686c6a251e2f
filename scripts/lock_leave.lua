-- lock_leave: take a client out of the turn queues of keys it no longer
-- waits for; a turn it had on a free key goes to the next client.
-- KEYS: the n lock keys, then their n turn queues.
-- ARGV[1]: the id of the client.
-- ARGV[2]: the pub/sub channel of lock releases of this DB.
-- Returns: the number of queues the client left. For each free key whose
--   turn was the client's, PUBLISHes on ARGV[2] the key and the client now
--   at the head of its queue ("" when none), as lock_release does.
-- The client now at the head of such a queue gets its turn now (see
--   lib_lock.lua).
--#include lib_lock
local n = #KEYS / 2
checkKeys(n + 1, 2 * n, 'zset')
local client, channel = ARGV[1], ARGV[2]
local passed, left = {}, 0
for i = 1, n do
  local q = KEYS[n + i]
  local wasHead = redis.call('ZRANGE', q, 0, 0)[1] == client
  left = left + redis.call('ZREM', q, client)
  if wasHead and redis.call('EXISTS', KEYS[i]) == 0 then
    giveTurn(KEYS[i], q, passed)
  end
end
publishTurns(channel, passed)
return left
