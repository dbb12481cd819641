-- finish.lua: a drain job leaves its lane: idle, rescheduled, parked, or handed on.
-- KEYS[1]  lane zset   KEYS[2]  lane marker   KEYS[3]  lanes zset   KEYS[4]  wake list
-- KEYS[5]  lane queue (fresh work: due now whenever it is there)
-- ARGV[1]  now (ms)    ARGV[2]  lane          ARGV[3]  park until (ms, 0 = do not park)
-- ARGV[4]  lease (ms)
-- Guarantee: atomic with enqueue.lua, so work added while the job was finishing is never stranded:
-- either this script sees it (and hands the lane on) or enqueue.lua sees no marker (and wakes it).
-- A park asked for after a resume came in (marker 'resumed') is not made: the lane is handed on or left.
-- Returns: "parked", "idle", "handed-on" or "scheduled".
local now = tonumber(ARGV[1])
local park = tonumber(ARGV[3])
-- A resume while this job ran ('resumed', see resume.lua) outdates the pause it parks for: no park.
if park > now and redis.call('GET', KEYS[2]) ~= 'resumed' then
  -- The marker keeps intake from waking the lane; the lanes score tells the sweep when to.
  redis.call('SET', KEYS[2], 'park', 'PX', park - now)
  redis.call('ZADD', KEYS[3], park, ARGV[2])
  return 'parked'
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if redis.call('LLEN', KEYS[5]) > 0 then first = {'', now} end
if #first == 0 then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[2])
  return 'idle'
end
local due = tonumber(first[2])
if due <= now then
  redis.call('SET', KEYS[2], 'wake', 'PX', tonumber(ARGV[4]))
  redis.call('ZADD', KEYS[3], now, ARGV[2])
  redis.call('RPUSH', KEYS[4], ARGV[2])
  return 'handed-on'
end
redis.call('ZADD', KEYS[3], due, ARGV[2])
redis.call('DEL', KEYS[2])
return 'scheduled'
