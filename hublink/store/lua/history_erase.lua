-- history_erase.lua: rewrite or remove history records (a privacy erasure: hublink.ops.privacy).
-- KEYS[1]  history zset (ids by time)   KEYS[2]  bytes counter   KEYS[3]  the record index's meta hash
-- ARGV[1]  record key prefix   ARGV[2]  index bucket key prefix   ARGV[3]  buckets at level 0
-- ARGV[4]  bytes a record's keys cost besides its value   ARGV[5]  bytes an index member costs
-- ARGV[6..] pairs: entry id, its new stored record ("" to remove the record)
-- The stored form and the buckets are history_add.lua's. A new record names a subset of the records the old
-- one named (it is the old one with events redacted), so no bucket grows and none needs to split.
-- Guarantee: atomic. Each record, its index members and the byte count change together; the rewritten
-- record keeps its place in time and its expiry. Returns: how many records were rewritten or removed.
local prefix = ARGV[2]
local base = tonumber(ARGV[3])
local overhead = tonumber(ARGV[4])
local member_cost = tonumber(ARGV[5])
local meta = redis.call('HMGET', KEYS[3], 'n', 'level', 'split')
local n = tonumber(meta[1] or '0') or 0
local level = tonumber(meta[2] or '0') or 0
local split = tonumber(meta[3] or '0') or 0

-- include: lib_history_index

local changed = 0
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  local value = ARGV[i + 1]
  local k = ARGV[1] .. id
  local old = redis.call('GET', k)
  if old then
    local old_ref, old_tags = index_of(old)
    for _, tag in ipairs(old_tags) do
      n = n - redis.call('ZREM', bucket(tag), tag .. old_ref)
    end
    redis.call('DECRBY', KEYS[2], cost(old))
    if value == '' then
      redis.call('DEL', k)
      redis.call('ZREM', KEYS[1], id)
    else
      redis.call('SET', k, value, 'KEEPTTL')
      redis.call('INCRBY', KEYS[2], cost(value))
      local ref, tags = index_of(value)
      local ttl = redis.call('TTL', k)
      for _, tag in ipairs(tags) do
        local b = bucket(tag)
        n = n + redis.call('ZADD', b, 0, tag .. ref)
        -- A bucket emptied above and made again has no expiry: it gets the record's.
        if ttl > 0 and redis.call('TTL', b) == -1 then redis.call('EXPIRE', b, ttl) end
      end
    end
    changed = changed + 1
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HSET', KEYS[3], 'n', math.max(n, 0)) end
return changed
