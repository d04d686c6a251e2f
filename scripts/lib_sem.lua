-- lib_sem: the shared part of the semaphore scripts (included, not run).
-- A semaphore's keys, all under its hash tag:
--   KEYS[1] holders  ZSET token -> lease expiry (ms, server time)
--   KEYS[2] held     HASH token -> permits held
--   KEYS[3] queue    ZSET token -> arrival number: the waiters, in order
--   KEYS[4] wanted   HASH token -> permits asked for by a queued waiter
--   KEYS[5] meta     HASH seq (arrival counter), turn (the head whose
--                    turn runs), turn_at (when that turn ends, ms)
local holders, held, queue, wanted, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- purge drops the holders whose lease ran out and returns the permits the
-- others hold
local function purge(now)
  local gone = redis.call('ZRANGEBYSCORE', holders, '-inf', now)
  for _, t in ipairs(gone) do
    redis.call('ZREM', holders, t)
    redis.call('HDEL', held, t)
  end
  local used = 0
  for _, v in ipairs(redis.call('HVALS', held)) do
    used = used + tonumber(v)
  end
  return used
end

-- earliest is the earliest lease expiry (ms), -1 when nobody holds a permit
local function earliest()
  local e = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')
  if #e == 0 then
    return -1
  end
  return tonumber(e[2])
end

-- dequeue removes token from the queue; it returns whether it was there
local function dequeue(token)
  if redis.call('ZREM', queue, token) == 0 then
    return false
  end
  redis.call('HDEL', wanted, token)
  if redis.call('HGET', meta, 'turn') == token then
    redis.call('HDEL', meta, 'turn', 'turn_at')
  end
  return true
end
