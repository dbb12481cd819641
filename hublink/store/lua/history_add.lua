-- history_add.lua: keep one accepted request (and its events' outcomes) in the event history, within bounds.
-- KEYS[1]  history zset (ids by time)   KEYS[2]  bytes counter   KEYS[3]  dropped counter
-- KEYS[4]  the record index's meta hash (n, level, split)
-- ARGV[1]  entry id   ARGV[2]  accepted at (ms)   ARGV[3]  the stored record (hublink.intake.history's form)
-- ARGV[4]  TTL of the keys (s)   ARGV[5]  most bytes to keep   ARGV[6]  cut-off (ms): older entries leave
-- ARGV[7]  record key prefix   ARGV[8]  index bucket key prefix   ARGV[9]  buckets at level 0
-- ARGV[10] index members per bucket before one splits   ARGV[11]  bytes a record's keys cost besides its value
-- ARGV[12] bytes an index member costs
-- The stored record opens with its index: byte 0x02, member count (2 bytes), entry ref length (1 byte), the
-- entry ref, then a 3-byte tag per record it names; each index member is tag .. ref, in bucket
-- tag mod (buckets at level 0 x 2^level), or the next level's bucket when that one is already split.
-- Guarantee: atomic. The record, its place in time and in the index, and the byte count change together; a
-- record leaves with its index members; past the byte cap (records and index) the oldest records leave
-- first and are counted; writing an id twice changes nothing.
-- Returns: how many records the cap dropped.
local key = ARGV[7] .. ARGV[1]
if redis.call('EXISTS', key) == 1 then return 0 end
local ttl = tonumber(ARGV[4])
local prefix = ARGV[8]
local base = tonumber(ARGV[9])
local load = tonumber(ARGV[10])
local overhead = tonumber(ARGV[11])
local member_cost = tonumber(ARGV[12])
local meta = redis.call('HMGET', KEYS[4], 'n', 'level', 'split')
local n = tonumber(meta[1] or '0') or 0
local level = tonumber(meta[2] or '0') or 0
local split = tonumber(meta[3] or '0') or 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- An empty history: whatever the index still counts belongs to records that have expired.
  n, level, split = 0, 0, 0
  redis.call('SET', KEYS[2], 0)
end

-- include: lib_history_index

local function zadd_all(k, members)
  for i = 1, #members, 500 do
    local args = {}
    for j = i, math.min(i + 499, #members) do
      args[#args + 1] = 0
      args[#args + 1] = members[j]
    end
    redis.call('ZADD', k, unpack(args))
  end
end

local value = ARGV[3]
redis.call('SET', key, value, 'EX', ttl)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('INCRBY', KEYS[2], cost(value))
local ref, tags = index_of(value)
local touched = {}
for _, tag in ipairs(tags) do
  local b = bucket(tag)
  n = n + redis.call('ZADD', b, 0, tag .. ref)
  touched[b] = true
end
for b in pairs(touched) do redis.call('EXPIRE', b, ttl) end

-- Linear hashing: past `load` members a bucket on average, the next bucket in turn splits in two by one
-- more bit of the tag, so buckets stay small (listpack-encoded) however many records the window holds.
local splits = 0
while n > load * (base * 2 ^ level + split) and splits < 64 do
  local size = base * 2 ^ level
  local from = prefix .. string.format('%d', split)
  local to = prefix .. string.format('%d', split + size)
  local stay, go = {}, {}
  for _, m in ipairs(redis.call('ZRANGE', from, 0, -1)) do
    if tag_number(m) % (size * 2) == split then stay[#stay + 1] = m else go[#go + 1] = m end
  end
  if #go > 0 then
    -- Written afresh, so that a bucket that outgrew listpack encoding gets it back once small again.
    redis.call('DEL', from)
    zadd_all(from, stay)
    zadd_all(to, go)
    redis.call('EXPIRE', from, ttl)
    redis.call('EXPIRE', to, ttl)
  end
  split = split + 1
  if split >= size then
    level = level + 1
    split = 0
  end
  splits = splits + 1
end

local function drop(id)
  local k = ARGV[7] .. id
  local old = redis.call('GET', k)
  redis.call('ZREM', KEYS[1], id)
  if not old then return end
  redis.call('DEL', k)
  local old_ref, old_tags = index_of(old)
  for _, tag in ipairs(old_tags) do
    n = n - redis.call('ZREM', bucket(tag), tag .. old_ref)
  end
  redis.call('DECRBY', KEYS[2], cost(old))
end
-- Records past the window leave a few at a time (each write removes more than it adds).
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[6], 'LIMIT', 0, 50)) do
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
redis.call('HSET', KEYS[4], 'n', math.max(n, 0), 'level', level, 'split', split)
redis.call('EXPIRE', KEYS[4], ttl)
return dropped
