-- A device's presence deadline passed: emit its offline event, unless it reported meanwhile.
-- ARGV: 1 prefix, 2 dev, 3 the deadline the caller saw, 4 offline presence json.
-- Returns the new entry id, or false when nothing was due.
local p, dev, seen_deadline, json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dl = p .. ':presence:deadline'
local score = redis.call('ZSCORE', dl, dev)
if not score or tonumber(score) ~= tonumber(seen_deadline) then
  return false
end
redis.call('ZREM', dl, dev)
local devkey = p .. ':dev:' .. dev
if redis.call('HGET', devkey, 'presence') ~= 'online' then
  return false
end
local id = redis.call('XADD', p .. ':outbox:presence', '*', 'e', json)
redis.call('HINCRBY', p .. ':stats', 'accepted:presence', 1)
redis.call('HSET', devkey, 'presence', 'offline', 'presence_json', json)
return id
