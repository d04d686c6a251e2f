-- sem_acquire: tries a batch of requests for permits of one semaphore, in
-- order. A request gets its n permits, or none. Waiters are served in the
-- order they queued, across every client: a request is granted only when
-- the queue is empty or it is the queue's head, so a big request is never
-- overtaken by small ones. A refused waiting request queues (once).
--
-- The head's turn: once enough permits are free for the head, it has
-- ARGV[2] ms to take them; a head that lets its turn pass (its client died)
-- leaves the queue, and the next one's turn begins. Requests refused
-- meanwhile are told when the turn ends.
--
-- Idempotency: a token that holds permits already gets its lease again, so
-- a batch whose answer was lost may be resent.
--
-- KEYS[1..5] the semaphore's keys (see lib_sem.lua)
-- ARGV[1] permits of the semaphore (>= 1)
-- ARGV[2] turn grace (ms)
-- ARGV[3] channel (see lib_publish), ARGV[4] payload: published when a grant leaves a next
--         head that may be served
-- ARGV[5+4(i-1)..]: request i's token, n (>= 1), lease ms (>= 1), wait (1
--         queues it when refused, 0 not)
-- Returns {now, r1, r2, ...}, now the server time (ms), ri for request i:
--   {1, expiry}  granted; expiry of its lease (ms)
--   {0, at}      refused; at is the earliest time (ms) it could change by
--                itself (a lease expiry, the end of a turn), -1 none: only
--                a release can help
--#include lib_publish
--#include lib_sem
local permits = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local now = now_ms()
local used = purge(now)

-- head returns the queue's head, its n and the end of its turn (-1 when
-- it cannot be served now), after dropping heads whose turn passed
local function head()
  while true do
    local h = redis.call('ZRANGE', queue, 0, 0)
    if #h == 0 then
      return nil, 0, -1
    end
    local token = h[1]
    local n = tonumber(redis.call('HGET', wanted, token)) or 0
    if n > permits - used then
      redis.call('HDEL', meta, 'turn', 'turn_at')
      return token, n, -1
    end
    if redis.call('HGET', meta, 'turn') ~= token then
      redis.call('HSET', meta, 'turn', token, 'turn_at', now + grace)
      return token, n, now + grace
    end
    local ends = tonumber(redis.call('HGET', meta, 'turn_at'))
    if ends > now then
      return token, n, ends
    end
    dequeue(token)
  end
end

local out = {now}
local granted_head = false
for i = 5, #ARGV, 4 do
  local token, n, ttl, wait = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3] == '1'
  local expiry = redis.call('ZSCORE', holders, token)
  if expiry then
    out[#out + 1] = {1, tonumber(expiry)}
  else
    local h, _, turn_at = head()
    if n <= permits - used and (h == nil or h == token) then
      redis.call('ZADD', holders, now + ttl, token)
      redis.call('HSET', held, token, n)
      used = used + n
      if h == token then
        dequeue(token)
        granted_head = true
      end
      out[#out + 1] = {1, now + ttl}
    else
      if wait and not redis.call('ZSCORE', queue, token) then
        redis.call('ZADD', queue, redis.call('HINCRBY', meta, 'seq', 1), token)
        redis.call('HSET', wanted, token, n)
      end
      local at = earliest()
      if turn_at >= 0 and h ~= token and (at < 0 or turn_at < at) then
        at = turn_at
      end
      out[#out + 1] = {0, at}
    end
  end
end
if granted_head then
  local _, _, turn_at = head()
  if turn_at >= 0 then
    publish(ARGV[3], ARGV[4])
  end
end
return out
