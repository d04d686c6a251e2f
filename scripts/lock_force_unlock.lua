-- lock_force_unlock: frees a lock whoever holds it (an operator's "break"),
-- and hands it on as lock_release does: transferred to the waiter whose
-- ticket the head of its turn queue filed, or a turn (see lib_lock.lua).
-- The holder learns it at its next renewal or refresh, which finds its
-- token gone.
-- KEYS[1]: the lock key. KEYS[2]: its fencing counter. KEYS[3]: its turn
--   queue. KEYS[4]: its ticket hash.
-- ARGV[1]: the pub/sub channel of lock releases of the key's DB, or of
--   its slot (see lib_publish).
-- ARGV[2]: the most (ms) a transferred key is held before its new holder
--   confirms it (see lock_release).
-- Returns: the token that held the key, or "" when it was free (nothing is
--   changed then). When it was held, the hand-off is PUBLISHed on ARGV[1]
--   as lock_release publishes it.
--#include lib_publish
--#include lib_lock
checkKeys(1, 1, 'string')
checkKeys(2, 2, 'string', true)
checkKeys(3, 3, 'zset')
checkKeys(4, 4, 'hash')
local holder = redis.call('GET', KEYS[1])
if not holder then
  return ''
end
redis.call('DEL', KEYS[1])
local out = {}
handOn(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[2]), out)
publishTurns(ARGV[1], out)
return holder
