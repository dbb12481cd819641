-- enqueue.lua: store one HTTP request's associations, mark its events seen, and wake idle lanes.
-- KEYS[1]  lanes zset            KEYS[2]  wake list
-- ARGV[1]  JSON {now: ms, lease_ms, dedup_ttl_s, counters: [[key, field, n, ttl_s]...],
--                dlq: dead-letter zset, groups: [{seen: key|false, on_new: [[key, field, n]...], on_dup: [...],
--                items: [{id, akey, lane, lkey, mkey, rec (object), attempts?, hist?, replays?, first_seen?,
--                dlkey?}]}]}
-- An item with dlkey is a replay: its dead letter is removed in the same step, so a replayed
-- association is never both pending and dead, nor neither.
-- Guarantee: atomic. Either every group of the request is stored (or found a duplicate) or nothing is;
-- a seen-mark is never written without its associations, so no crash can lose a deduplicated event.
-- Returns: one integer per group, 1 = stored, 0 = duplicate (already seen inside the dedup window).
local p = cjson.decode(ARGV[1])
local now = p.now
local results = {}
local woken = {}
-- Counts are summed here and written once per field: a 100-event batch makes one HINCRBY, not 100.
local sums = {}
-- Lane members are added with one ZADD per lane (in chunks), not one per association.
local adds = {}
local add_order = {}
local function count(c)
  local id = c[1] .. '\0' .. c[2]
  local s = sums[id]
  if s then s[3] = s[3] + c[3] else sums[id] = {c[1], c[2], c[3], c[4]} end
end
for gi, g in ipairs(p.groups) do
  local fresh = true
  if g.seen then
    fresh = redis.call('SET', g.seen, '1', 'NX', 'EX', p.dedup_ttl_s) ~= false
  end
  if fresh then
    for _, it in ipairs(g.items) do
      -- The record travels as an object inside the one payload and is encoded here, in C, once.
      local rec = cjson.encode(it.rec)
      if it.hist then
        -- A replay: it keeps its history and counts; new work leaves them to their defaults (absent).
        redis.call('HSET', it.akey, 'req', rec, 'lane', it.lane, 'first_seen', it.first_seen or now,
          'attempts', it.attempts or 0, 'hist', it.hist, 'replays', it.replays or 0)
      else
        redis.call('HSET', it.akey, 'req', rec, 'lane', it.lane, 'first_seen', it.first_seen or now)
      end
      local members = adds[it.lkey]
      if not members then
        members = {}
        adds[it.lkey] = members
        table.insert(add_order, it.lkey)
      end
      table.insert(members, now)
      table.insert(members, it.id)
      if it.dlkey then
        redis.call('DEL', it.dlkey)
        redis.call('ZREM', p.dlq, it.id)
      end
      if not woken[it.lane] then
        woken[it.lane] = true
        redis.call('ZADD', KEYS[1], 'LT', now, it.lane)
        -- The marker says a drain is queued, running or parked; only an idle lane needs a wake-up.
        if redis.call('SET', it.mkey, 'wake', 'NX', 'PX', p.lease_ms) then
          redis.call('RPUSH', KEYS[2], it.lane)
        end
      end
    end
    results[gi] = 1
  else
    results[gi] = 0
  end
  -- Per-event counts depend on the dedup outcome, which only this script knows.
  local counts = g.on_dup
  if fresh then counts = g.on_new end
  for _, c in ipairs(counts or {}) do count(c) end
end
for _, lkey in ipairs(add_order) do
  local members = adds[lkey]
  for i = 1, #members, 1000 do
    redis.call('ZADD', lkey, unpack(members, i, math.min(i + 999, #members)))
  end
end
for _, c in ipairs(p.counters or {}) do count(c) end
for _, c in pairs(sums) do
  redis.call('HINCRBY', c[1], c[2], c[3])
  if c[4] and c[4] > 0 then redis.call('EXPIRE', c[1], c[4]) end
end
return results
