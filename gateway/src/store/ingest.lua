-- Accept the events one input produced, atomically (one script = one AOF entry).
-- ARGV: 1 prefix, 2 dev, 3 now_ms, 4 presence deadline_ms, 5 profile,
--       6 dedup key ('' = none), 7 dedup ttl s, 8 input hash ('' = none),
--       9 check recent ('1' = the input may be a redelivery or a retry), 10 recent cap,
--       11 online presence json, 12 budget json-free header: max_events, 13 n events,
--       then 4 per event: class ('presence-off' for a device going offline), json, lon, lat.
-- Returns {'ok', id...} | {'dup'} | {'full', class}.
local p, dev, now, deadline, profile = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local dkey, dttl, h, check, cap = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local online, max_events, n = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local recent = p .. ':ingest:recent'
if h ~= '' and check == '1' and redis.call('LPOS', recent, h) then
  return {'dup'}
end
if dkey ~= '' and not redis.call('SET', p .. ':dedup:' .. dkey, '1', 'NX', 'EX', dttl) then
  return {'dup'}
end

-- Budget (SPEC §6): alerts always get in; messages are refused when their share (a quarter
-- of the budget) is full; location and status make room by thinning (the buffer guard keeps
-- the total under 90%), and are refused only past a hard cap of 110% — if the guard cannot
-- keep up.
local function len(c) return redis.call('XLEN', p .. ':outbox:' .. c) end
local total = len('alert') + len('message') + len('presence') + len('status') + len('location')
for i = 0, n - 1 do
  local class = ARGV[14 + i * 4]
  if class == 'message' then
    if len('message') + len('alert') >= math.floor(max_events * 0.25) or total >= max_events then
      return {'full', class}
    end
  elseif class == 'status' or class == 'location' then
    if total >= max_events * 1.1 then
      return {'full', class}
    end
  end
end

if h ~= '' then
  redis.call('LPUSH', recent, h)
  redis.call('LTRIM', recent, 0, cap - 1)
end
local devkey = p .. ':dev:' .. dev
local state = redis.call('HGET', devkey, 'presence')
local out = {'ok'}
local seen = (n == 0)
local stats = p .. ':stats'
local function go_online()
  if state ~= 'online' then
    table.insert(out, redis.call('XADD', p .. ':outbox:presence', '*', 'e', online))
    redis.call('HINCRBY', stats, 'accepted:presence', 1)
    redis.call('HSET', devkey, 'presence', 'online', 'presence_json', online)
    state = 'online'
  end
end
if seen then go_online() end
for i = 0, n - 1 do
  local b = 14 + i * 4
  local class, json, lon, lat = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if class == 'presence-off' then
    if state == 'online' then
      table.insert(out, redis.call('XADD', p .. ':outbox:presence', '*', 'e', json))
      redis.call('HINCRBY', stats, 'accepted:presence', 1)
      redis.call('HSET', devkey, 'presence', 'offline', 'presence_json', json)
      redis.call('ZREM', p .. ':presence:deadline', dev)
      state = 'offline'
    end
  else
    go_online()
    table.insert(out, redis.call('XADD', p .. ':outbox:' .. class, '*', 'e', json))
    redis.call('HINCRBY', stats, 'accepted:' .. class, 1)
    redis.call('HSET', devkey, class, json)
    if lon ~= '' then
      redis.call('GEOADD', p .. ':geo', lon, lat, dev)
    end
    seen = true
  end
end
if seen then
  redis.call('HSET', devkey, 'last_seen', now, 'profile', profile)
  redis.call('ZADD', p .. ':presence:deadline', deadline, dev)
end
redis.call('SADD', p .. ':devices', dev)
return out
