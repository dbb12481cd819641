-- lib_history_index.lua: the record index's functions, shared by history_add.lua and history_erase.lua.
-- Not a script: hublink.store.scripts pastes it where a script's include line names it, after the
-- script has declared the locals these read: base, level, split (the linear hashing's state), prefix
-- (the buckets' key prefix), overhead and member_cost (bytes).

local function tag_number(s)
  local a, b, c = string.byte(s, 1, 3)
  return (a * 256 + b) * 256 + c
end

local function bucket(tag)
  local size = base * 2 ^ level
  local h = tag_number(tag)
  local b = h % size
  if b < split then b = h % (size * 2) end
  return prefix .. string.format('%d', b)
end

-- The record's index: its entry ref and the tags of the records it names.
local function index_of(value)
  if string.byte(value, 1) ~= 2 or #value < 4 then return nil, {} end
  local count = string.byte(value, 2) * 256 + string.byte(value, 3)
  local ref_len = string.byte(value, 4)
  local ref = string.sub(value, 5, 4 + ref_len)
  local tags = {}
  local at = 5 + ref_len
  for i = 1, count do
    tags[i] = string.sub(value, at, at + 2)
    at = at + 3
  end
  return ref, tags
end

-- What a record holds in Redis: its value (rounded up by the allocator: an eighth on average), its keys'
-- overhead, and its index members.
local function cost(value)
  local _, tags = index_of(value)
  return #value + math.floor(#value / 8) + overhead + #tags * member_cost
end
