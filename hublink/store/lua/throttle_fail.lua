-- throttle_fail.lua: count one failed authentication in the current window of each scope.
-- KEYS[1..n]  throttle:<scope> counters (the client's address, then "all")
-- ARGV[1]     the window (s): a counter's first failure starts it, the key expires at its end
-- Guarantee: atomic. Every counter is increased and given its expiry in one step, so a crash between
-- INCR and EXPIRE cannot leave a counter that never expires (and locks an address out for ever).
-- Returns: the counts after the increase, in KEYS order.
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
