-- pool_report: applies the outcome of one use of a container to its
-- health (see lib_pool.lua for the record).
--   "s" Succeeded clears the failure streak.
--   "f" Failed adds one to the streak.
--   "b" Blocked adds one to the streak and to its Blocked count k, and
--       cools the container down: NextAvailable becomes at least
--       now + min(backoff * 2^(k-1), maxBackoff); a later one is kept.
-- A streak of retireAfter (> 0) retires the container: it leaves the ready
-- set, and the record keeps its NextAvailable (after the cooldown) for a
-- revival by Put. A retired container ignores reports: only Put revives it.
-- A Blocked report, and a retirement, write the record (rev + 1), so that
-- they overtake every grant made before them (see overtaken in
-- lib_pool.lua): handing such a grant back cannot undo the cooldown. Other
-- reports keep rev: they change the streak alone, which a hand-back keeps.
-- A report makes nothing ready, so it publishes nothing: no waiter wakes.
-- A container whose TTL has passed is purged (counted in KEYS[5]) and not
-- found.
-- KEYS[1..5]: the pool's keys (see lib_pool.lua)
-- ARGV[1] the id
-- ARGV[2] the outcome: "s", "f" or "b"
-- ARGV[3] backoff (µs, >= 0)
-- ARGV[4] maxBackoff (µs, >= 0)
-- ARGV[5] retireAfter (0: never)
-- Returns {nowUs, state, nextAvailableUs, failures}; state is -1 when the id
-- is not found (the rest is 0), 0 when the container is live after the
-- report, 1 when it was retired already (nothing changed), 2 when this
-- report retired it. A record that does not decode, or one that disagrees
-- with the ready set, is corrupt (see lookup in lib_pool.lua). An outcome
-- that is none of the three is an error reply; nothing is written.
--#include lib_pool
local id, outcome = ARGV[1], ARGV[2]
local backoff, maxBackoff, retireAfter = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if outcome ~= 's' and outcome ~= 'f' and outcome ~= 'b' then
  return redis.error_reply('ERR pool_report: outcome "' .. outcome .. '" is none of s, f, b')
end
local r, nextAt = lookup(id)
if not r then return {us, -1, 0, 0} end
if r[8] > 0 then return {us, 1, nextAt, r[6]} end

if outcome == 's' then
  if r[6] > 0 or r[7] > 0 then
    r[6], r[7] = 0, 0
    redis.call('HSET', meta, id, encode(r))
  end
  return {us, 0, nextAt, 0}
end

r[6] = r[6] + 1
local moved = false -- whether the record must count as rewritten (rev + 1)
if outcome == 'b' then
  r[7] = r[7] + 1
  -- the k-th Blocked of the streak: backoff * 2^(k-1), capped; 2^60 times
  -- even 1µs is past any cap (at most 100 years), and keeps d finite
  local d = math.min(backoff * 2 ^ math.min(r[7] - 1, 60), maxBackoff)
  -- never shortens a cooldown in force, and always moves NextAvailable, if
  -- only by 1µs, as pool_cooldown does: handing back a grant made before
  -- cannot undo it (see undo in lib_pool.lua)
  nextAt = math.max(nextAt + 1, us + d)
  moved = true
end
local state = 0
if retireAfter > 0 and r[6] >= retireAfter then
  r[8] = nextAt
  redis.call('ZREM', ready, id)
  state, moved = 2, true
elseif outcome == 'b' then
  redis.call('ZADD', ready, string.format('%.0f', nextAt), id)
end
if moved then r[5] = r[5] + 1 end
redis.call('HSET', meta, id, encode(r))
return {us, state, nextAt, r[6]}
