-- lock_force_unlock: frees a lock whoever holds it (an operator's "break"),
-- and hands it to the client whose turn is next, as lock_release does. The
-- holder learns it at its next renewal or refresh, which finds its token
-- gone.
-- KEYS[1]: the lock key. KEYS[2]: its turn queue.
-- ARGV[1]: the pub/sub channel of lock releases of the key's DB.
-- Returns: the token that held the key, or "" when it was free (nothing is
--   changed then). When it was held, PUBLISHes on ARGV[1] the key and the
--   client now at the head of its turn queue ("" when none waits), written
--   as lock_release writes them.
--#include lib_lock
local holder = redis.call('GET', KEYS[1])
if not holder then
  return ''
end
redis.call('DEL', KEYS[1])
local freed = {}
giveTurn(KEYS[1], KEYS[2], freed)
publishTurns(ARGV[1], freed)
return holder
