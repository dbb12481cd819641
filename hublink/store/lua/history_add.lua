-- history_add.lua: keep one accepted request (and its events' outcomes) in the event history, within bounds.
-- KEYS[1]  history zset (ids by time)   KEYS[2]  bytes counter   KEYS[3]  dropped counter
-- ARGV[1]  entry id   ARGV[2]  accepted at (ms)   ARGV[3]  the record (compact JSON)   ARGV[4]  TTL (s)
-- ARGV[5]  most bytes to keep   ARGV[6]  cut-off (ms): older entries leave   ARGV[7]  record key prefix
-- ARGV[8..]  the record-index zsets naming this entry (one per record its events or associations name)
-- Guarantee: atomic. The record, its place in time and in every index, and the byte count change together;
-- past the byte cap the oldest records are dropped first and counted; writing an id twice changes nothing.
-- Returns: how many records the cap dropped.
local key = ARGV[7] .. ARGV[1]
if redis.call('EXISTS', key) == 1 then return 0 end
local ttl = tonumber(ARGV[4])
redis.call('SET', key, ARGV[3], 'EX', ttl)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('INCRBY', KEYS[2], #ARGV[3])
for i = 8, #ARGV do
  redis.call('ZADD', ARGV[i], ARGV[2], ARGV[1])
  redis.call('EXPIRE', ARGV[i], ttl)
end
local function drop(id)
  local k = ARGV[7] .. id
  local size = redis.call('STRLEN', k)
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[1], id)
  if size > 0 then redis.call('DECRBY', KEYS[2], size) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[6], 'LIMIT', 0, 1000)) do
  drop(id)
end
local dropped = 0
local most = tonumber(ARGV[5])
while tonumber(redis.call('GET', KEYS[2]) or '0') > most do
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #first == 0 then
    redis.call('SET', KEYS[2], 0)
    break
  end
  drop(first[1])
  dropped = dropped + 1
end
if dropped > 0 then redis.call('INCRBY', KEYS[3], dropped) end
return dropped
