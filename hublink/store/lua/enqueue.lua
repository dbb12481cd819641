-- enqueue.lua: store one HTTP request's associations, mark its events seen, and wake idle lanes.
-- KEYS[1]  lanes zset            KEYS[2]  wake list
-- ARGV is flat, so that the bulk of a request (a 100-event batch is ~900 arguments) is read as it comes,
-- never JSON-decoded here: decoding it costs more than storing it.
--   [1] now (ms)   [2] lease (ms)   [3] dedup TTL (s)   [4] dead-letter zset
--   [5] association key prefix   [6] lane queue key prefix   [7] lane marker key prefix
--   [8] JSON header, small whatever the request's size:
--       {lanes: [lane, ...], sets: [[[key, field, n, ttl_s], ...], ...], counters: set number or 0,
--        ack: [inbox stream, group, entry id] (optional: the inbox entry these groups came from),
--        aside: [inbox:failed stream, cap, field, value, ...] (optional: events of the entry that cannot be
--               used, kept for operators in the same step, so a crash can neither lose nor repeat them)}
--       a "set" is one list of metric increments; groups name theirs by number (1-based, 0 = none)
--   then per group: seen key ('' = no dedup), on_new set, on_dup set, item count,
--     and per item: lane number (1-based), member (the association itself, ``hublink.lanes`` form),
--     replay ('' = new work, else JSON {id, attempts, hist, replays, dlkey?})
-- New work is one list item and nothing else: a first attempt needs no state, so it has no hash (this is
-- what keeps a pending association near 120 bytes of Redis). A replay keeps its history and counts in
-- a:<id>; with dlkey its dead letter is removed in the same step, so a replayed association is never
-- both pending and dead, nor neither.
-- Guarantee: atomic. Either every group of the request is stored (or found a duplicate) or nothing is;
-- a seen-mark is never written without its associations, so no crash can lose a deduplicated event.
-- With ack, the inbox entry is acknowledged and deleted in the same step, so an entry is expanded exactly
-- once: if it is already gone (a slow expander whose entry was taken over and expanded by another), this
-- stores nothing and returns {-1}.
-- Returns: one integer per group, 1 = stored, 0 = duplicate (already seen inside the dedup window).
local now = tonumber(ARGV[1])
local lease_ms = ARGV[2]
local dedup_ttl = ARGV[3]
local dlq = ARGV[4]
local akey_prefix = ARGV[5]
local queue_prefix = ARGV[6]
local marker_prefix = ARGV[7]
local header = cjson.decode(ARGV[8])
local ack = header.ack
-- Still pending means no one has expanded it yet; it is acknowledged last, so that a script stopped by an
-- error half-way leaves the entry pending (to be taken over), never acknowledged without its work.
if ack and #redis.call('XPENDING', ack[1], ack[2], ack[3], ack[3], 1) == 0 then return {-1} end
local lanes = header.lanes
local results = {}
-- Items are appended in the order given, so a link and an unlink of one pair are claimed (and settled) in
-- the order they were accepted. One RPUSH per lane (in chunks), not one per association.
local members = {}
local woken = {}
-- Count sets are tallied here and written once per field: a 100-event batch makes one HINCRBY, not 100.
local hits = {}
local function hit(set)
  if set > 0 then hits[set] = (hits[set] or 0) + 1 end
end

local i = 9
local n_args = #ARGV
while i <= n_args do
  local seen, on_new, on_dup, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local fresh = seen == '' or redis.call('SET', seen, '1', 'NX', 'EX', dedup_ttl) ~= false
  if fresh then
    for _ = 1, n do
      local li, member, replay = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
      i = i + 3
      if replay ~= '' then
        local r = cjson.decode(replay)
        local akey = akey_prefix .. r.id
        redis.call('DEL', akey)
        redis.call('HSET', akey, 'attempts', r.attempts or 0, 'hist', r.hist or '[]', 'replays', r.replays or 0)
        if r.dlkey then
          redis.call('DEL', r.dlkey)
          redis.call('ZREM', dlq, r.id)
        end
      end
      local list = members[li]
      if not list then
        list = {}
        members[li] = list
      end
      list[#list + 1] = member
    end
    results[#results + 1] = 1
    hit(on_new)
  else
    i = i + 3 * n
    results[#results + 1] = 0
    -- Per-event counts depend on the dedup outcome, which only this script knows.
    hit(on_dup)
  end
end

for li, list in pairs(members) do
  local lane = lanes[li]
  for j = 1, #list, 1000 do
    redis.call('RPUSH', queue_prefix .. lane, unpack(list, j, math.min(j + 999, #list)))
  end
  if not woken[lane] then
    woken[lane] = true
    redis.call('ZADD', KEYS[1], 'LT', now, lane)
    -- The marker says a drain is queued, running or parked; only an idle lane needs a wake-up.
    if redis.call('SET', marker_prefix .. lane, 'wake', 'NX', 'PX', lease_ms) then
      redis.call('RPUSH', KEYS[2], lane)
    end
  end
end

hit(header.counters or 0)
local sums = {}
local order = {}
for set, times in pairs(hits) do
  for _, c in ipairs(header.sets[set]) do
    local id = c[1] .. '\0' .. c[2]
    local s = sums[id]
    if s then
      s[3] = s[3] + c[3] * times
    else
      sums[id] = {c[1], c[2], c[3] * times, c[4]}
      order[#order + 1] = id
    end
  end
end
for _, id in ipairs(order) do
  local c = sums[id]
  redis.call('HINCRBY', c[1], c[2], c[3])
  if c[4] and c[4] > 0 then redis.call('EXPIRE', c[1], c[4]) end
end
local aside = header.aside
if aside then
  redis.call('XADD', aside[1], 'MAXLEN', '~', aside[2], '*', unpack(aside, 3))
end
if ack then
  redis.call('XACK', ack[1], ack[2], ack[3])
  redis.call('XDEL', ack[1], ack[3])
end
return results
