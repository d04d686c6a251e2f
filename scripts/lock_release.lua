-- lock_release: give back the lock keys that still hold an owner token, and
-- tell every client whose turn it is.
-- KEYS: the n lock keys of the lease, then their n turn queues.
-- ARGV[1]: the owner token.
-- ARGV[2]: the pub/sub channel of lock releases of this DB.
-- ARGV[3]: the id of the releasing client.
-- ARGV[4]: n characters, the i-th "1" when the releasing client has more
--   waiters for KEYS[i]: it queues for its next turn (keeping its place if it
--   is queued already), behind the clients queued before.
-- Returns: the number of keys deleted (those that still held the token; a
--   key that expired or was taken over is left alone). When at least one key
--   was deleted, PUBLISHes on ARGV[2], for each deleted key, its name and the
--   id of the client at the head of its turn queue ("" when none waits),
--   each string written as <byte length>:<string>, one after the other.
-- The client at the head of a queue gets its turn now (see lib_lock.lua).
--#include lib_lock
local n = #KEYS / 2
checkKeys(1, n, 'string')
checkKeys(n + 1, 2 * n, 'zset')
local token, channel, client, more = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local freed, count = {}, 0
for i = 1, n do
  if redis.call('GET', KEYS[i]) == token then
    redis.call('DEL', KEYS[i])
    count = count + 1
    local q = KEYS[n + i]
    if string.sub(more, i, i) == '1' then
      enqueue(q, client)
    end
    giveTurn(KEYS[i], q, freed)
  end
end
publishTurns(channel, freed)
return count
