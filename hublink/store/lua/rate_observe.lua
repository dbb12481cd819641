-- rate_observe.lua: correct a bucket with what HubSpot's X-HubSpot-RateLimit-* headers say.
-- KEYS[1]  window zset   KEYS[2]  learned max   KEYS[3]  last-seen hash (for the dashboard)
-- ARGV[1]  now (ms)   ARGV[2]  window (ms)   ARGV[3]  header Max   ARGV[4]  header Remaining
-- ARGV[5]  unused: the safety margin is time, kept by the caller's stretched window
--          (RedisRateLimiter.window_ms)   ARGV[6]  member prefix (unique per call)
-- Guarantee: atomic. When HubSpot has counted more requests in its window than this bucket has (other
-- apps or processes share the account), placeholders are added so that every worker slows down; a
-- lower Max than configured is remembered for a minute.
-- Returns: the number of placeholders added.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hs_max = tonumber(ARGV[3])
local remaining = tonumber(ARGV[4])
redis.call('HSET', KEYS[3], 'max', hs_max, 'remaining', remaining, 'interval_ms', window, 'at', now)
redis.call('EXPIRE', KEYS[3], 600)
redis.call('SET', KEYS[2], math.max(hs_max, 1), 'PX', 60000)
-- Our entries are stamped when the token was taken, HubSpot counts a request when it arrives: near the
-- window's edge HubSpot still counts requests whose tokens are just older than its window. Counted over
-- one second more, those are not taken for another app's requests: each such placeholder would cost a
-- token, about 7 % of the limit at a steady backlog.
local used_there = hs_max - remaining
local used_here = redis.call('ZCOUNT', KEYS[1], '(' .. (now - window - 1000), '+inf')
local missing = used_there - used_here
local added = 0
if missing > 0 then
  for i = 1, missing do
    redis.call('ZADD', KEYS[1], now, ARGV[6] .. i)
    added = added + 1
  end
  redis.call('PEXPIRE', KEYS[1], 2 * window)
end
return added
