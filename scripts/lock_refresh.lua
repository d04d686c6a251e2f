-- lock_refresh: extend a lease, only if the token still holds every key.
-- KEYS: the lock keys of the lease.
-- ARGV[1]: the owner token.
-- ARGV[2]: the new lease length in milliseconds (integer >= 1).
-- Returns: 1 when every key held the token and now lives ARGV[2] ms more;
--   0 when one key did not (expired, deleted or taken over): nothing changed.
local token = ARGV[1]
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= token then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 1
