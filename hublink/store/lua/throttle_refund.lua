-- throttle_refund.lua: give back an attempt taken by throttle_take.lua (the token was right).
-- KEYS[1..n]  throttle:<scope> counters, as given to throttle_take.lua
-- Guarantee: atomic. A counter is decreased only while it exists and is above zero, so a refund after the
-- window ended creates nothing (no counter without an expiry, none below zero).
-- Returns: how many counters were decreased.
local refunded = 0
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 0 then
    redis.call('DECR', key)
    refunded = refunded + 1
  end
end
return refunded
