-- idempotent_add.lua: add a request to the inbox under an Idempotency-Key, unless the key is already held.
-- KEYS[1]  idem:<digest> string   KEYS[2]  inbox stream
-- ARGV[1]  the record to hold under the key (JSON: body digest, status, answer)   ARGV[2]  its TTL (s)
-- ARGV[3..]  the inbox entry's field/value pairs
-- Guarantee: atomic. The entry and the key are stored together or not at all: a crash, a timeout or a
-- full Redis (OOM is refused before the first write of a script, never between two) cannot store the work
-- without the key or the key without the work, and of two concurrent requests with one key only the first
-- stores anything.
-- Returns: {1, entry id} when stored now; {0, the record already held} when the key was used before.
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local entry = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {1, entry}
