-- pool_handback: makes the containers of grants that nobody received ready
-- again, by the grant records pool_take left. For each container of a record:
-- UsageCount - 1, and NextAvailable goes back to what it was before the take
-- unless it moved since (a Cooldown, another take). The record is deleted,
-- so handing back twice does nothing. Publishes the pool's name when a
-- container was handed back, so that waiters of every client wake.
-- KEYS[1] ready: ZSET id -> next-available time (µs)
-- KEYS[2] meta:  HASH id -> "createdMs:ttlMs:intervalMs:usageCount"
-- KEYS[2+i] grant record i (STRING, written by pool_take)
-- ARGV[1] channel to publish on
-- ARGV[2] the pool's name (the message)
-- Returns the number of containers handed back.
local ready, meta = KEYS[1], KEYS[2]
local back = 0
for i = 3, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    redis.call('DEL', KEYS[i])
    local ok, grant = pcall(cmsgpack.unpack, raw)
    if ok and type(grant) == 'table' then
      for j = 1, #grant, 3 do
        local id, prev, taken = grant[j], grant[j + 1], grant[j + 2]
        local raw_meta = redis.call('HGET', meta, id)
        local c, ttl, iv, u
        if raw_meta then
          c, ttl, iv, u = string.match(raw_meta, '^(%d+):(%d+):(%d+):(%d+)$')
        end
        if c then
          u = tonumber(u)
          if u > 0 then u = u - 1 end
          redis.call('HSET', meta, id, c .. ':' .. ttl .. ':' .. iv .. ':' .. string.format('%.0f', u))
          local score = redis.call('ZSCORE', ready, id)
          if score and tonumber(score) == taken then
            redis.call('ZADD', ready, string.format('%.0f', prev), id)
          end
          back = back + 1
        end
      end
    end
  end
end
if back > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return back
