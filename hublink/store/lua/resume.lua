-- resume.lua: lift a pause (or close a circuit) and wake the lanes it held, at once.
-- KEYS[1]  paused hash   KEYS[2]  lanes zset   KEYS[3]  wake list
-- ARGV[1]  the paused field to remove   ARGV[2]  now (ms)   ARGV[3]  lease (ms)
-- ARGV[4]  lane marker prefix   ARGV[5]  the lane to wake, or a portal's lane prefix ("<portal>|")
-- ARGV[6]  "1" when ARGV[5] names one lane, "0" when it is a prefix
-- Guarantee: atomic. A lane parked because of the pause is woken now (its park marker replaced by a wake
-- marker and the lane pushed on the wake list), so resumed work does not wait for the park to run out;
-- a lane with a drain queued or running is left to it, its marker turned to 'resumed': that drain may
-- have claimed while the pause held (a paused claim leaves the marker as it found it), and finish.lua then hands the lane on instead of parking it (else the resume
-- would be lost and the work would wait out the park).
-- Returns: {removed (0/1), lanes woken}.
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
local woken = 0
local function wake(lane)
  local marker = ARGV[4] .. lane
  local state = redis.call('GET', marker)
  if state == false or state == 'park' then
    redis.call('SET', marker, 'wake', 'PX', tonumber(ARGV[3]))
    redis.call('ZADD', KEYS[2], now, lane)
    redis.call('RPUSH', KEYS[3], lane)
    woken = woken + 1
  elseif state == 'run' or state == 'wake' then
    redis.call('SET', marker, 'resumed', 'KEEPTTL')
  end
end
if ARGV[6] == '1' then
  if redis.call('ZSCORE', KEYS[2], ARGV[5]) then wake(ARGV[5]) end
else
  local prefix = ARGV[5]
  for _, lane in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if string.sub(lane, 1, #prefix) == prefix then wake(lane) end
  end
end
return {removed, woken}
