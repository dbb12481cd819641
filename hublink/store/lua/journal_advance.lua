-- journal_advance.lua: move a portal's Webhooks Journal offset on, only from where the caller read it.
-- KEYS[1]  journal:<portal>:offset string   KEYS[2]  the journal_events_read metric hash
-- ARGV[1]  the offset the caller read from ("" when it had none)   ARGV[2]  the new offset
-- ARGV[3]  the metric's field (portal=<p>)   ARGV[4]  events the entry brought
-- Guarantee: atomic compare-and-set, with its count. Two pollers that read from the same offset cannot
-- both advance it: the second finds the offset moved and learns that its entry was another's (its events
-- are duplicates, and are not counted twice).
-- Returns: 1 when the offset was advanced, 0 when it had moved.
local current = redis.call('GET', KEYS[1])
if current == false then
  current = ''
end
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
local n = tonumber(ARGV[4])
if n > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], n)
end
return 1
