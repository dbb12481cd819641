-- claim.lua: take up to N due associations out of one lane and lease them to the caller.
-- KEYS[1]  lane zset (retried and reclaimed work, by due)   KEYS[2]  inflight zset   KEYS[3]  lane marker
-- KEYS[4]  lane queue (fresh work, oldest first)           KEYS[5]  leased hash
-- ARGV[1]  now (ms)       ARGV[2]  limit              ARGV[3]  lease (ms)
-- ARGV[4]  association key prefix                     ARGV[5]  batch window (ms), 0 = never wait
-- ARGV[6]  the lane's name
-- ARGV[7]  paused hash ('' = do not check)            ARGV[8..]  its fields that stop this lane
--          (lane:<lane>, portal:<p>, and circuit:<p> unless this claim is a circuit's probe)
-- A member is the association itself: "<id> US <first seen ms> US ..." (``hublink.lanes.codec``). Due
-- retries go first, then fresh work in the order accepted.
-- Guarantee: atomic. A claimed id is in the inflight zset with a deadline, and its member in the leased
-- hash, before it leaves the lane, so a worker that dies holding it only delays it until the lease runs
-- out (sweep.lua hands it back). An association whose state cannot be read here (a:<id> not a hash) is
-- leased and returned all the same, with '!<error>' as its state, never dropped: the caller dead-letters
-- what it cannot read, and a bad key cannot make this script fail for the whole lane.
-- Cost: a 2,000-association claim is a handful of variadic commands when nothing claimed has state (one
-- EXISTS over all the state keys says so), not three per association, whose per-call overhead would be
-- most of the drain's Redis time.
-- Returns: {"paused", field} when the lane, its portal or the portal's circuit is paused (nothing is
-- claimed: no attempt spent), {"wait", ms} when the batch window asks to wait, else a flat list of
-- member, state for each claimed association: state '' (no a:<id>), '!<error>' (a:<id> unreadable), or
-- the JSON array of its attempts, hist, replays fields (false where absent).
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local window = tonumber(ARGV[5])
local lane = ARGV[6]
if ARGV[7] and ARGV[7] ~= '' then
  -- One read per claim: a paused lane costs its drain this HMGET and nothing else.
  local fields = {}
  for i = 8, #ARGV do table.insert(fields, ARGV[i]) end
  if #fields > 0 then
    local paused = redis.call('HMGET', ARGV[7], unpack(fields))
    for i, v in ipairs(paused) do
      if v then return {'paused', fields[i]} end
    end
  end
end
redis.call('SET', KEYS[3], 'run', 'PX', lease)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local fresh = {}
if #due / 2 < limit then fresh = redis.call('LRANGE', KEYS[4], 0, limit - #due / 2 - 1) end
local total = #due / 2 + #fresh
if window > 0 and total > 0 and total < limit then
  local oldest = nil
  if #due > 0 then oldest = tonumber(due[2]) end
  if #fresh > 0 then
    local seen = tonumber(string.match(fresh[1], '^[^\31]*\31(%d+)'))
    if seen and (not oldest or seen < oldest) then oldest = seen end
  end
  if oldest and now - oldest < window then
    return {'wait', tostring(oldest + window - now)}
  end
end
if #fresh > 0 then redis.call('LTRIM', KEYS[4], #fresh, -1) end
local members = {}
for i = 1, #due, 2 do members[#members + 1] = due[i] end
for j = 1, #members, 1000 do redis.call('ZREM', KEYS[1], unpack(members, j, math.min(j + 999, #members))) end
for _, m in ipairs(fresh) do members[#members + 1] = m end
local ids, akeys = {}, {}
for i, m in ipairs(members) do
  ids[i] = string.match(m, '^([^\31]*)')
  akeys[i] = ARGV[4] .. ids[i]
end
local with_state = 0
for j = 1, #akeys, 1000 do
  with_state = with_state + redis.call('EXISTS', unpack(akeys, j, math.min(j + 999, #akeys)))
end
local out, inflight, leased = {}, {}, {}
for i, m in ipairs(members) do
  local state = ''
  if with_state > 0 and redis.call('EXISTS', akeys[i]) == 1 then
    local fields = redis.pcall('HMGET', akeys[i], 'attempts', 'hist', 'replays')
    if fields.err then state = '!' .. fields.err else state = cjson.encode(fields) end
  end
  inflight[#inflight + 1] = now + lease
  inflight[#inflight + 1] = ids[i]
  leased[#leased + 1] = ids[i]
  leased[#leased + 1] = lane .. '\30' .. m
  out[#out + 1] = m
  out[#out + 1] = state
end
for j = 1, #inflight, 1000 do redis.call('ZADD', KEYS[2], unpack(inflight, j, math.min(j + 999, #inflight))) end
for j = 1, #leased, 1000 do redis.call('HSET', KEYS[5], unpack(leased, j, math.min(j + 999, #leased))) end
return out
