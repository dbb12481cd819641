-- journal_advance.lua: move a portal's Webhooks Journal offset on, only from where the caller read it.
-- KEYS[1]  journal:<portal>:offset string
-- ARGV[1]  the offset the caller read from ("" when it had none)   ARGV[2]  the new offset
-- Guarantee: atomic compare-and-set. Two pollers that read from the same offset cannot both advance it:
-- the second finds the offset moved and learns that its entry was another's (its events are duplicates).
-- Returns: 1 when the offset was advanced, 0 when it had moved.
local current = redis.call('GET', KEYS[1])
if current == false then
  current = ''
end
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
