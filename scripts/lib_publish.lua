-- lib_publish: publish(target, payload) sends a wake-up. target is a
-- channel's name (PUBLISH, classic pub/sub), or "SPUBLISH <name>" for a
-- shard channel (SPUBLISH, Redis Cluster ≥ 7): one in the slot of the
-- script's KEYS, as Redis requires. A script includes lib_publish before
-- any library that publishes.
local function publish(target, payload)
  if string.sub(target, 1, 9) == 'SPUBLISH ' then
    redis.call('SPUBLISH', string.sub(target, 10), payload)
  else
    redis.call('PUBLISH', target, payload)
  end
end
