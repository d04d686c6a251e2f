-- lock_release: give back the lock keys that still hold an owner token, and
-- tell the waiters of every client which keys are free.
-- KEYS: the lock keys of the lease.
-- ARGV[1]: the owner token.
-- ARGV[2]: the pub/sub channel of lock releases of this DB.
-- Returns: the number of keys deleted (those that still held the token; a
--   key that expired or was taken over is left alone). When at least one key
--   was deleted, the names of the deleted keys are PUBLISHed on ARGV[2],
--   each written as <byte length>:<name>, one after the other.
local token = ARGV[1]
local freed = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == token then
    redis.call('DEL', KEYS[i])
    freed[#freed + 1] = #KEYS[i] .. ':' .. KEYS[i]
  end
end
if #freed > 0 then
  redis.call('PUBLISH', ARGV[2], table.concat(freed))
end
return #freed
