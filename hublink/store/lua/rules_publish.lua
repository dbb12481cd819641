-- rules_publish.lua: append the next version of the rules document and publish it, from the version read.
-- KEYS[1]  rules:published string (the published version's number)
-- ARGV[1]  the version the caller read (0 when none): its diff was computed against that one
-- ARGV[2]  the prefix of version hashes (rules:v:)   ARGV[3..]  the new version's fields, name then value
-- Guarantee: atomic compare-and-append. Two publishes that read the same version cannot both write the
-- next one: the second finds the number moved, reads again and takes the number after (distinct numbers,
-- and each diff is against the version just before it). A version hash is never written twice.
-- Returns: the new version's number, or minus the number now published when it had moved.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return -current
end
local version = current + 1
local key = ARGV[2] .. version
if redis.call('EXISTS', key) == 1 then
  return -current
end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('SET', KEYS[1], version)
return version
