-- rate_block.lua: shut a rate-limit bucket until a time, never shortening a longer block.
-- KEYS[1]  the bucket's block key (epoch ms before which nothing may be sent)
-- ARGV[1]  until (epoch ms)       ARGV[2]  now (epoch ms)
-- Guarantee: atomic. Two workers blocking the same bucket at once leave the later of their two times:
-- a GET then a SET from Python could let the shorter block overwrite the longer one.
-- Returns: the block in force afterwards (epoch ms).
local untl = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= untl then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(untl - tonumber(ARGV[2]), 1))
return untl
