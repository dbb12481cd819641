-- set_aside.lua: move an inbox entry that cannot be expanded to inbox:failed, unless it is no longer pending.
-- KEYS[1]  inbox stream          KEYS[2]  inbox:failed stream
-- ARGV[1]  consumer group        ARGV[2]  entry id      ARGV[3]  reason      ARGV[4]  failed stream's cap
-- Guarantee: atomic. The entry is copied, acknowledged and deleted in one step, and only while still
-- pending: a slow expander that stored its work in the meantime wins, and nothing is set aside twice.
-- Returns: 1 = set aside, 0 = already gone (expanded or set aside by another worker).
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found > 0 then
  local fields = found[1][2]
  table.insert(fields, 'entry')
  table.insert(fields, ARGV[2])
  table.insert(fields, 'reason')
  table.insert(fields, ARGV[3])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
