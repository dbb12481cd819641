-- settle.lua: record the outcome of each association of one HubSpot call.
-- KEYS[1]  inflight zset   KEYS[2]  lanes zset   KEYS[3]  dead-letter zset   KEYS[4]  dropped counter
-- KEYS[5]  leased hash
-- ARGV[1]  JSON {now: ms, dl_ttl_s, dl_max, dl_prefix, akey_prefix, lane, lkey, counters: [[key, field, n,
--                ttl_s]...], outcomes: [{member, kind: retry|dead, due?, attempts?, hist?, dl?}],
--                done_key?, done_ttl_s? (optional: the day's hash of done records, for traces)}
-- ARGV[2..] the done outcomes, flat: member, done record ('' = keep none) for each
-- Guarantee: atomic, and settles only associations still held: leased (by this caller, or by another
-- that took it after this caller's lease ran out) or handed back to the lane by the sweep and not yet
-- claimed again. Once another worker settled the same association, a late "retry" cannot bring it back.
-- "dead" writes the dead letter and deletes the association in one step: never in both, never in neither.
-- Cost: done outcomes, nearly all of them, take a few variadic commands per call, not four per association.
-- Returns: the number of outcomes applied.
local p = cjson.decode(ARGV[1])
local applied = 0

local function chunked(command, key, list)
  for j = 1, #list, 1000 do
    if key then
      redis.call(command, key, unpack(list, j, math.min(j + 999, #list)))
    else
      redis.call(command, unpack(list, j, math.min(j + 999, #list)))
    end
  end
end

-- Which of these ids are still held: leased, else swept back to the lane and not claimed again.
local function holding(ids, members)
  local held = {}
  for j = 1, #ids, 1000 do
    local part = redis.call('HMGET', KEYS[5], unpack(ids, j, math.min(j + 999, #ids)))
    for k, v in ipairs(part) do held[j + k - 1] = v ~= false end
  end
  chunked('HDEL', KEYS[5], ids)
  chunked('ZREM', KEYS[1], ids)
  for i = 1, #ids do
    if not held[i] then held[i] = redis.call('ZREM', p.lkey, members[i]) == 1 end
  end
  return held
end

local n_done = (#ARGV - 1) / 2
if n_done > 0 then
  local ids, members = {}, {}
  for i = 1, n_done do
    members[i] = ARGV[2 * i]
    ids[i] = string.match(members[i], '^([^\31]*)')
  end
  local held = holding(ids, members)
  local akeys, records = {}, {}
  for i = 1, n_done do
    if held[i] then
      applied = applied + 1
      -- DEL of a missing key costs a lookup: cheaper than knowing which ones have state.
      akeys[#akeys + 1] = p.akey_prefix .. ids[i]
      local record = ARGV[2 * i + 1]
      if p.done_key and record ~= '' then
        records[#records + 1] = ids[i]
        records[#records + 1] = record
      end
    end
  end
  chunked('DEL', nil, akeys)
  if #records > 0 then
    chunked('HSET', p.done_key, records)
    redis.call('EXPIRE', p.done_key, p.done_ttl_s)
  end
end

if #p.outcomes > 0 then
  local ids, members = {}, {}
  for i, o in ipairs(p.outcomes) do
    members[i] = o.member
    ids[i] = string.match(o.member, '^([^\31]*)')
  end
  local held = holding(ids, members)
  for i, o in ipairs(p.outcomes) do
    if held[i] then
      applied = applied + 1
      local akey = p.akey_prefix .. ids[i]
      if o.kind == 'retry' then
        -- pcall: a state key corrupted by hand must not fail the whole call; it is replaced.
        local written = redis.pcall('HSET', akey, 'attempts', o.attempts, 'hist', o.hist)
        if type(written) == 'table' and written.err then
          redis.call('DEL', akey)
          redis.call('HSET', akey, 'attempts', o.attempts, 'hist', o.hist)
        end
        redis.call('ZADD', p.lkey, o.due, o.member)
        redis.call('ZADD', KEYS[2], 'LT', o.due, p.lane)
      elseif o.kind == 'dead' then
        redis.call('DEL', akey)
        redis.call('SET', p.dl_prefix .. ids[i], o.dl, 'EX', p.dl_ttl_s)
        redis.call('ZADD', KEYS[3], p.now, ids[i])
      end
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
