-- sem_release: gives back the permits of tokens, and takes them out of the
-- queue if they wait there; publishes when that may let a waiter go.
-- KEYS[1..5] the semaphore's keys (see lib_sem.lua)
-- ARGV[1] channel (see lib_publish), ARGV[2] payload
-- ARGV[3..] tokens
-- Returns the number of tokens whose lease was still running: 0 for a
-- single token means it was not held (expired, or released already).
--#include lib_publish
--#include lib_sem
local now = now_ms()
local live, changed = 0, false
for i = 3, #ARGV do
  local token = ARGV[i]
  local expiry = redis.call('ZSCORE', holders, token)
  if expiry then
    redis.call('ZREM', holders, token)
    redis.call('HDEL', held, token)
    changed = true
    if tonumber(expiry) > now then
      live = live + 1
    end
  end
  local first = redis.call('ZRANGE', queue, 0, 0)
  if dequeue(token) and first[1] == token then
    changed = true
  end
end
if changed then
  publish(ARGV[1], ARGV[2])
end
return live
