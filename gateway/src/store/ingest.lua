-- Accept a batch of inputs, each atomically (the whole script is one AOF entry), in one call:
-- one script invocation and one budget reading per batch instead of per input.
-- ARGV: 1 prefix, 2 dedup ttl s, 3 recent cap, 4 max_events, 5 number of inputs, then per
--   input: dev, now_ms, presence deadline_ms, profile, dedup key ('' = none),
--   input hash ('' = none), check recent ('1' = may be a redelivery or a retry),
--   online presence json, topic ('' = serial; kept for the downlink), n events, then 4 per event: class ('presence-off' for a device
--   going offline), json, lon, lat.
-- Returns one reply per input: {'ok', id...} | {'dup'} | {'full', class}.
local p, dttl, cap, max_events = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local recent = p .. ':ingest:recent'
local stats = p .. ':stats'
local classes = {'alert', 'message', 'receipt', 'presence', 'status', 'location'}
local lens, total = {}, 0
for _, c in ipairs(classes) do
  lens[c] = redis.call('XLEN', p .. ':outbox:' .. c)
  total = total + lens[c]
end
local function xadd(class, json)
  lens[class] = lens[class] + 1
  total = total + 1
  redis.call('HINCRBY', stats, 'accepted:' .. class, 1)
  return redis.call('XADD', p .. ':outbox:' .. class, '*', 'e', json)
end

-- Budget (SPEC §6): alerts always get in, and an input that carries one is accepted whole;
-- messages are refused when their share (a quarter of the budget) is full; location and status
-- make room by thinning (the buffer guard keeps the total under 90%) and are refused only past
-- a hard cap of 110%, if the guard cannot keep up.
local function refused(a, n)
  for i = 0, n - 1 do
    if ARGV[a + i * 4] == 'alert' then return nil end
  end
  for i = 0, n - 1 do
    local class = ARGV[a + i * 4]
    if class == 'message' then
      if lens['message'] + lens['alert'] >= math.floor(max_events * 0.25) or total >= max_events then
        return class
      end
    elseif class == 'status' or class == 'location' then
      if total >= max_events * 1.1 then return class end
    end
  end
  return nil
end

local function accept(a)
  local dev, now, deadline, profile = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local dkey, h, check, online = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local topic = ARGV[a + 8]
  local n = tonumber(ARGV[a + 9])
  local ev = a + 10
  if h ~= '' and check == '1' and redis.call('LPOS', recent, h) then
    return {'dup'}
  end
  -- Only look at the decoder identity here: claiming it before the budget check would make a
  -- refused input look like a duplicate when retried, and it would be acknowledged and lost.
  local dedup = p .. ':dedup:' .. dkey
  if dkey ~= '' and redis.call('EXISTS', dedup) == 1 then
    return {'dup'}
  end
  local full = refused(ev, n)
  if full then
    return {'full', full}
  end
  if dkey ~= '' then
    redis.call('SET', dedup, '1', 'EX', dttl)
  end
  if h ~= '' then
    redis.call('LPUSH', recent, h)
    redis.call('LTRIM', recent, 0, cap - 1)
  end
  local devkey = p .. ':dev:' .. dev
  local state = redis.call('HGET', devkey, 'presence')
  if not state then
    redis.call('SADD', p .. ':devices', dev)
  end
  local out = {'ok'}
  local seen = (n == 0)
  local function go_online()
    if state ~= 'online' then
      table.insert(out, xadd('presence', online))
      redis.call('HSET', devkey, 'presence', 'online', 'presence_json', online)
      state = 'online'
    end
  end
  if seen then go_online() end
  for i = 0, n - 1 do
    local b = ev + i * 4
    local class, json, lon, lat = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    if class == 'presence-off' then
      if state == 'online' then
        table.insert(out, xadd('presence', json))
        redis.call('HSET', devkey, 'presence', 'offline', 'presence_json', json)
        redis.call('ZREM', p .. ':presence:deadline', dev)
        state = 'offline'
      end
    else
      go_online()
      table.insert(out, xadd(class, json))
      redis.call('HSET', devkey, class, json)
      if lon ~= '' then
        redis.call('GEOADD', p .. ':geo', lon, lat, dev)
      end
      seen = true
    end
  end
  if seen then
    redis.call('HSET', devkey, 'last_seen', now, 'profile', profile)
    if topic ~= '' then redis.call('HSET', devkey, 'topic', topic) end
    redis.call('ZADD', p .. ':presence:deadline', deadline, dev)
  end
  return out
end

local replies = {}
local a = 6
for _ = 1, tonumber(ARGV[5]) do
  table.insert(replies, accept(a))
  a = a + 10 + 4 * tonumber(ARGV[a + 9])
end
return replies
