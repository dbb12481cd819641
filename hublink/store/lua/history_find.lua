-- history_find.lua: the record index's members for one record tag, and an older HubLink's index of it.
-- KEYS[1]  the record index's meta hash (level, split)   KEYS[2]  the record's zset as an older HubLink wrote it
-- ARGV[1]  index bucket key prefix   ARGV[2]  buckets at level 0   ARGV[3]  the record's 4-byte tag
-- ARGV[4]  the lex range's end: '(' .. the next tag, or '+' after the last
-- Guarantee: reads the meta and the bucket in one step, so a split between them cannot hide members.
-- Returns: {members (tag .. entry ref), entry ids of the older index}.
local meta = redis.call('HMGET', KEYS[1], 'level', 'split')
local level = tonumber(meta[1] or '0') or 0
local split = tonumber(meta[2] or '0') or 0
local size = tonumber(ARGV[2]) * 2 ^ level
local a, b, c, d = string.byte(ARGV[3], 1, 4)
local h = ((a * 256 + b) * 256 + c) * 256 + d
local n = h % size
if n < split then n = h % (size * 2) end
local found = redis.call('ZRANGEBYLEX', ARGV[1] .. string.format('%d', n), '[' .. ARGV[3], ARGV[4])
return {found, redis.call('ZRANGE', KEYS[2], 0, -1)}
