-- settle.lua: record the outcome of each association of one HubSpot call.
-- KEYS[1]  inflight zset   KEYS[2]  lanes zset   KEYS[3]  dead-letter zset   KEYS[4]  dropped counter
-- KEYS[5]  leased hash
-- ARGV[1]  JSON {now: ms, dl_ttl_s, dl_max, dl_prefix, counters: [[key, field, n, ttl_s]...],
--                outcomes: [{id, member, akey, kind: done|retry|dead, lane, lkey, due?, attempts?, hist?,
--                            dl?, rec?, first_seen?, replays?}],
--                done_prefix?, done_ttl_s? (optional: keep a compact record of each done association,
--                built from rec, first_seen and replays)}
-- Guarantee: atomic, and settles only associations still held: leased (by this caller, or by another
-- that took it after this caller's lease ran out) or handed back to the lane by the sweep and not yet
-- claimed again. Once another worker settled the same association, a late "retry" cannot bring it back.
-- "dead" writes the dead letter and deletes the association in one step: never in both, never in neither.
-- Returns: the number of outcomes applied.
local p = cjson.decode(ARGV[1])
local applied = 0
for _, o in ipairs(p.outcomes) do
  redis.call('ZREM', KEYS[1], o.id)
  local held = redis.call('HDEL', KEYS[5], o.id)
  -- Swept back after its lease ran out, and not claimed again: the outcome still stands.
  if held == 0 then held = redis.call('ZREM', o.lkey, o.member) end
  -- A bare id leased before 2026-12 has no leased entry: its hash says whether it is still pending.
  if held == 0 and o.id == o.member then held = redis.call('EXISTS', o.akey) end
  if held == 1 then
    applied = applied + 1
    if o.kind == 'done' then
      if p.done_prefix then
        -- Kept for a record's trace: when it was linked, after how many attempts, and their history.
        redis.call('SET', p.done_prefix .. o.id, cjson.encode({
          at = p.now, req = o.rec, first_seen = o.first_seen, replays = o.replays, attempts = o.attempts,
          hist = o.hist, lane = o.lane}), 'EX', p.done_ttl_s)
      end
      redis.call('DEL', o.akey)
    elseif o.kind == 'retry' then
      redis.call('HSET', o.akey, 'attempts', o.attempts, 'hist', o.hist)
      redis.call('ZADD', o.lkey, o.due, o.member)
      redis.call('ZADD', KEYS[2], 'LT', o.due, o.lane)
    elseif o.kind == 'dead' then
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
