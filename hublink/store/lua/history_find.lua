-- history_find.lua: the kept requests naming one record (by its tag), with their times and, when few, records.
-- KEYS[1]  the record index's meta hash (level, split)   KEYS[2]  history zset (ids by time)
-- ARGV[1]  index bucket key prefix   ARGV[2]  buckets at level 0   ARGV[3]  the record's 3-byte tag
-- ARGV[4]  the lex range's end: '(' .. the next tag, or '+' after the last   ARGV[5]  record key prefix
-- ARGV[6]  most requests whose records come back too (more: ids and times only)   ARGV[7]  the refs' epoch (ms)
-- Members are tag .. entry ref: a stream id packed as 5 bytes of ms since the epoch and its sequence (big-endian),
-- or 0xFF and the id as text (hublink.intake.history.entry_ref).
-- Guarantee: reads the meta, the bucket, the times and the records in one step, so a split or a drop
-- between them cannot hide a request or show one without its record.
-- Returns: {entry ids, their times (ms), their records or nothing}; requests already dropped are left out.
local meta = redis.call('HMGET', KEYS[1], 'level', 'split')
local level = tonumber(meta[1] or '0') or 0
local split = tonumber(meta[2] or '0') or 0
local size = tonumber(ARGV[2]) * 2 ^ level
local a, b, c = string.byte(ARGV[3], 1, 3)
local h = (a * 256 + b) * 256 + c
local n = h % size
if n < split then n = h % (size * 2) end

local function entry_of(ref)
  if string.byte(ref, 1) == 255 then return string.sub(ref, 2) end
  local ms, seq = 0, 0
  for i = 1, 5 do ms = ms * 256 + string.byte(ref, i) end
  for i = 6, #ref do seq = seq * 256 + string.byte(ref, i) end
  ms = ms + tonumber(ARGV[7])
  return string.format('%.0f-%.0f', ms, seq)
end

local ids, times, seen = {}, {}, {}
local function consider(id)
  if seen[id] then return end
  seen[id] = true
  local at = redis.call('ZSCORE', KEYS[2], id)
  if at then
    ids[#ids + 1] = id
    times[#times + 1] = at
  end
end
for _, member in ipairs(redis.call('ZRANGEBYLEX', ARGV[1] .. string.format('%d', n), '[' .. ARGV[3], ARGV[4])) do
  consider(entry_of(string.sub(member, 4)))
end
local records = {}
if #ids <= tonumber(ARGV[6]) then
  for i, id in ipairs(ids) do records[i] = redis.call('GET', ARGV[5] .. id) or '' end
end
return {ids, times, records}
