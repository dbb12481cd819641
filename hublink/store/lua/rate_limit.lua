-- rate_limit.lua: take one token from a bucket shared by every worker, or say how long to wait.
-- KEYS[1]  window zset (sliding log)   KEYS[2]  block key (epoch ms)   KEYS[3]  learned max
-- ARGV[1]  now (ms)   ARGV[2]  window (ms)   ARGV[3]  configured limit   ARGV[4]  unique member
-- Guarantee: atomic check-and-take, so N workers on M machines never send more than the limit inside
-- any rolling window. A sliding log (not a token bucket) because HubSpot's own limit is a rolling
-- window: the same shape on both sides is what makes "no 429 in steady state" hold at the edges.
-- Returns: 0 when the token was taken, else milliseconds to wait before asking again.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return blocked - now
end
local learned = tonumber(redis.call('GET', KEYS[3]) or '0')
if learned > 0 and learned < limit then limit = learned end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window - now, 1)
