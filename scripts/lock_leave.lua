-- lock_leave: take a client out of the turn queues of keys it no longer
-- waits for; a free key whose turn was the client's is handed on to the next
-- client (see lib_lock.lua).
-- KEYS: the n lock keys, their n fencing counters, their n turn queues and
--   their n ticket hashes (KEYS[n+i], KEYS[2n+i] and KEYS[3n+i] go with
--   KEYS[i]).
-- ARGV[1]: the id of the client.
-- ARGV[2]: the pub/sub channel of lock releases of this DB, or of the
--   keys' slot (see lib_publish).
-- ARGV[3]: the most (ms) a transferred key is held unconfirmed (see
--   lock_release).
-- Returns: the number of queues the client left. Each hand-off is PUBLISHed
--   on ARGV[2], as lock_release does.
--#include lib_publish
--#include lib_lock
local n = #KEYS / 4
checkKeys(1, n, 'string')
checkKeys(n + 1, 2 * n, 'string', true)
checkKeys(2 * n + 1, 3 * n, 'zset')
checkKeys(3 * n + 1, 4 * n, 'hash')
local client, channel, grace = ARGV[1], ARGV[2], tonumber(ARGV[3])
local passed, left = {}, 0
for i = 1, n do
  local q, t = KEYS[2 * n + i], KEYS[3 * n + i]
  local wasHead = redis.call('ZRANGE', q, 0, 0)[1] == client
  left = left + redis.call('ZREM', q, client)
  redis.call('HDEL', t, client)
  if wasHead and redis.call('EXISTS', KEYS[i]) == 0 then
    handOn(KEYS[i], KEYS[n + i], q, t, grace, passed)
  end
end
publishTurns(channel, passed)
return left
