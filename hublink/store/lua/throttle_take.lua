-- throttle_take.lua: take one authentication attempt from every scope's window, or refuse it.
-- KEYS[1..n]  throttle:<scope> counters (the client's address, then "all")
-- ARGV[1]     the window (s): a counter's first attempt starts it, the key expires at its end
-- ARGV[2..n+1] each scope's limit, in KEYS order
-- Guarantee: atomic. The check and the count are one step, so attempts arriving together cannot all pass
-- the check before any of them is counted: at most the limit are let through per window. Every counter
-- is increased and given its expiry in the same step (never a counter without one).
-- Returns: {1, count1, ..., countn} when taken; {0, retry_after_s, i} when scope i is used up.
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = 1 end
    return {0, ttl, i}
  end
end
local counts = {1}
for i, key in ipairs(KEYS) do
  counts[i + 1] = redis.call('INCR', key)
  if counts[i + 1] == 1 or redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
