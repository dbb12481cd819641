-- sweep.lua: hand back expired leases and wake lanes whose time has come. Every worker runs it.
-- KEYS[1]  inflight zset   KEYS[2]  lanes zset   KEYS[3]  wake list   KEYS[4]  leased hash
-- ARGV[1]  now (ms)  ARGV[2]  lease (ms)  ARGV[3]  limit per pass
-- ARGV[4]  association key prefix  ARGV[5]  lane key prefix  ARGV[6]  lane marker prefix
-- Guarantee: atomic and idempotent, so any number of workers may run it at once; a lease that ran
-- out (its worker died) puts the association back in its lane's zset, due now, with its reclaims counted.
-- Returns: {reclaimed, woken, ms until the next lane or lease falls due (-1 = nothing pending)}.
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local reclaimed = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local akey = ARGV[4] .. id
  local lane, member = nil, nil
  local held = redis.call('HGET', KEYS[4], id)
  if held then
    redis.call('HDEL', KEYS[4], id)
    lane, member = string.match(held, '^([^\30]*)\30(.*)$')
  end
  if lane then
    -- pcall: the state key may be corrupt; the association goes back all the same (its claim buries it).
    redis.pcall('HINCRBY', akey, 'reclaims', 1)
    redis.call('ZADD', ARGV[5] .. lane, now, member)
    redis.call('ZADD', KEYS[2], 'LT', now, lane)
    reclaimed = reclaimed + 1
  end
end
local woken = 0
local next_due = -1
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, lane in ipairs(due) do
  if redis.call('SET', ARGV[6] .. lane, 'wake', 'NX', 'PX', lease) then
    redis.call('RPUSH', KEYS[3], lane)
    woken = woken + 1
  elseif redis.call('GET', ARGV[6] .. lane) == 'park' then
    -- Due by its score, but its park marker outlives it by a clock tick: look again when the marker
    -- goes, not a whole idle interval later (at HubSpot's limit every park ends like this).
    local left = redis.call('PTTL', ARGV[6] .. lane)
    if left >= 0 and (next_due < 0 or left < next_due) then next_due = left end
  end
end
local nl = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #nl > 0 and (next_due < 0 or tonumber(nl[2]) - now < next_due) then next_due = tonumber(nl[2]) - now end
local ni = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #ni > 0 then
  local d = math.max(tonumber(ni[2]) - now, 0)
  if next_due < 0 or d < next_due then next_due = d end
end
return {reclaimed, woken, next_due}
