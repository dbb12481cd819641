-- settle.lua: record the outcome of each association of one HubSpot call.
-- KEYS[1]  inflight zset   KEYS[2]  lanes zset   KEYS[3]  dead-letter zset   KEYS[4]  dropped counter
-- ARGV[1]  JSON {now: ms, dl_ttl_s, dl_max, dl_prefix, counters: [[key, field, n, ttl_s]...],
--                outcomes: [{id, akey, kind: done|retry|dead, lane, lkey, due?, attempts?, hist?, dl?}],
--                done_prefix?, done_ttl_s? (optional: keep a compact record of each done association)}
-- Guarantee: atomic, and settles only associations that still exist: if a lease ran out and another
-- worker settled the same association first, a late "retry" cannot bring a finished one back.
-- "dead" writes the dead letter and deletes the association in one step: never in both, never in neither.
-- Returns: the number of outcomes applied.
local p = cjson.decode(ARGV[1])
local applied = 0
for _, o in ipairs(p.outcomes) do
  redis.call('ZREM', KEYS[1], o.id)
  if redis.call('EXISTS', o.akey) == 1 then
    applied = applied + 1
    if o.kind == 'done' then
      if p.done_prefix then
        -- Kept for a record's trace: when it was linked, after how many attempts, and their history.
        local f = redis.call('HMGET', o.akey, 'req', 'first_seen', 'replays')
        redis.call('SET', p.done_prefix .. o.id, cjson.encode({
          at = p.now, req = f[1], first_seen = f[2], replays = f[3], attempts = o.attempts, hist = o.hist,
          lane = o.lane}), 'EX', p.done_ttl_s)
      end
      redis.call('ZREM', o.lkey, o.id)
      redis.call('DEL', o.akey)
    elseif o.kind == 'retry' then
      redis.call('HSET', o.akey, 'attempts', o.attempts, 'hist', o.hist)
      redis.call('ZADD', o.lkey, o.due, o.id)
      redis.call('ZADD', KEYS[2], 'LT', o.due, o.lane)
    elseif o.kind == 'dead' then
      redis.call('ZREM', o.lkey, o.id)
      redis.call('DEL', o.akey)
      redis.call('SET', p.dl_prefix .. o.id, o.dl, 'EX', p.dl_ttl_s)
      redis.call('ZADD', KEYS[3], p.now, o.id)
    end
  end
end
-- Retention: bodies expire by TTL; their index entries are trimmed here, where dead letters are made.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', p.now - p.dl_ttl_s * 1000)
-- The size cap drops the oldest dead letters, and counts them so that the drop is visible.
local excess = redis.call('ZCARD', KEYS[3]) - p.dl_max
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], excess)
  for i = 1, #oldest, 2 do
    redis.call('DEL', p.dl_prefix .. oldest[i])
  end
  redis.call('INCRBY', KEYS[4], excess)
end
for _, c in ipairs(p.counters or {}) do
  redis.call('HINCRBY', c[1], c[2], c[3])
  if c[4] and c[4] > 0 then redis.call('EXPIRE', c[1], c[4]) end
end
return applied
