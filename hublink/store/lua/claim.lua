-- claim.lua: take up to N due associations out of one lane and lease them to the caller.
-- KEYS[1]  lane zset      KEYS[2]  inflight zset      KEYS[3]  lane marker
-- ARGV[1]  now (ms)       ARGV[2]  limit              ARGV[3]  lease (ms)
-- ARGV[4]  association key prefix                     ARGV[5]  batch window (ms), 0 = never wait
-- ARGV[6]  paused hash ('' = do not check)            ARGV[7..]  its fields that stop this lane
--          (lane:<lane>, portal:<p>, and circuit:<p> unless this claim is a circuit's probe)
-- Guarantee: atomic. A claimed id is in the inflight zset with a deadline before it leaves the lane,
-- so a worker that dies holding it only delays it until the lease runs out (sweep.lua hands it back).
-- An association whose hash cannot be read here (no record, or not a hash at all) is leased and returned
-- with empty fields all the same, never dropped: the caller dead-letters what it cannot read, and a bad
-- key cannot make this script fail for the whole lane.
-- Returns: {"paused", field} when the lane, its portal or the portal's circuit is paused (nothing is
-- claimed: no attempt spent), {"wait", ms} when the batch window asks to wait, else a flat list of
-- id, req, attempts, hist, first_seen, replays for each claimed association.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local window = tonumber(ARGV[5])
if ARGV[6] and ARGV[6] ~= '' then
  -- One read per claim: a paused lane costs its drain this HMGET and nothing else.
  local fields = {}
  for i = 7, #ARGV do table.insert(fields, ARGV[i]) end
  if #fields > 0 then
    local paused = redis.call('HMGET', ARGV[6], unpack(fields))
    for i, v in ipairs(paused) do
      if v then return {'paused', fields[i]} end
    end
  end
end
redis.call('SET', KEYS[3], 'run', 'PX', lease)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
if window > 0 and #due > 0 and #due / 2 < limit then
  local oldest = tonumber(due[2])
  if now - oldest < window then
    return {'wait', tostring(oldest + window - now)}
  end
end
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[4] .. id
  local fields = redis.pcall('HMGET', key, 'req', 'attempts', 'hist', 'first_seen', 'replays')
  if fields.err then fields = {false, false, false, false, false} end
  if fields[1] or redis.call('EXISTS', key) == 1 then
    redis.call('ZADD', KEYS[2], now + lease, id)
    table.insert(out, id)
    for _, f in ipairs(fields) do table.insert(out, f or '') end
  end
end
return out
