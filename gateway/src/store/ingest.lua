-- Accept a batch of inputs, each atomically (the whole script is one AOF entry), in one call:
-- one script invocation and one budget reading per batch instead of per input, and per device
-- one latest-state write per call (the last accepted event of each class wins, as before).
-- ARGV: 1 prefix, 2 dedup ttl s, 3 recent cap, 4 max_events, 5 number of inputs,
--   6 order key ('' = unordered), 7 the order number that must have landed before ('0' = none),
--   8 this call's order number; then per input: dev, now_ms, presence deadline_ms, profile,
--   dedup key ('' = none), input hash ('' = none), check recent ('1' = may be a redelivery or a
--   retry), online presence json, topic ('' = serial; kept for the downlink), slot (the device
--   broker's packet id, '' = none: IngestItem::slot in ingest.rs), n events, then 5
--   per event: class ('presence-off' for a device going offline), stream json (the compact form,
--   docs/redis-layout.md), latest-state json (the full §5 object with rx), lon, lat.
-- Returns one reply per input: {'ok', (id, prev, k)...} | {'dup'} | {'full', class}, or 'later' (nothing
-- done) when the call numbered `prev` has not landed: pipelines overlap on one connection, and a
-- call must not overtake an earlier one that failed and will be retried.
-- Per entry added: its id, `prev` (the id its stream generated last before it, so the uplink can
-- tell it follows what was sent: gateway/src/uplink/feed.rs), and k, which of the input's stored
-- forms it is (0 the online presence, i the i-th event; -k - 1 when stored changed, with "r").
local p, dttl, cap, max_events = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local okey, oprev, onum = ARGV[6], ARGV[7], ARGV[8]
if okey ~= '' then
  okey = p .. ':ingest:order:' .. okey
  if oprev ~= '0' and redis.call('GET', okey) ~= oprev then
    return 'later'
  end
  redis.call('SET', okey, onum, 'EX', 86400)
end
local recent = p .. ':ingest:recent'
local slots = p .. ':ingest:slots'
local stats = p .. ':stats'
local classes = {'alert', 'message', 'receipt', 'presence', 'status', 'location'}
local lens, total, accepted = {}, 0, {}
for _, c in ipairs(classes) do
  lens[c] = redis.call('XLEN', p .. ':outbox:' .. c)
  total = total + lens[c]
  accepted[c] = 0
end
-- Compact entries (not starting with `{"dev"`) take the input's receive time as the id's
-- milliseconds, so `rx` need not be stored; when the stream is already past that time (an older
-- input retried, the clock stepped back) Redis picks the id and `rx` is kept as "r".
-- The id each stream generated last (before this call: read once per class, lazily).
local last = {}
local function last_generated(class, key)
  if last[class] then return last[class] end
  local info = redis.pcall('XINFO', 'STREAM', key)
  if type(info) == 'table' and not info.err then
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then return info[i + 1] end
    end
  end
  return '0-0'
end
local function xadd(out, class, json, now, k)
  lens[class] = lens[class] + 1
  total = total + 1
  accepted[class] = accepted[class] + 1
  local key = p .. ':outbox:' .. class
  local prev = last_generated(class, key)
  local id
  if string.sub(json, 1, 6) ~= '{"dev"' then
    id = redis.pcall('XADD', key, now .. '-*', 'e', json)
    if type(id) == 'table' then
      id = redis.call('XADD', key, '*', 'e', string.sub(json, 1, -2) .. ',"r":' .. now .. '}')
      k = -k - 1
    end
  else
    id = redis.call('XADD', key, '*', 'e', json)
  end
  last[class] = id
  table.insert(out, id)
  table.insert(out, prev)
  table.insert(out, k)
end

-- Budget (SPEC §6): alerts always get in, and an input that carries one is accepted whole;
-- messages are refused when their share (a quarter of the budget) is full; location and status
-- make room by thinning (the buffer guard keeps the total under 90%) and are refused only past
-- a hard cap of 110%, if the guard cannot keep up.
local function refused(a, n)
  for i = 0, n - 1 do
    if ARGV[a + i * 5] == 'alert' then return nil end
  end
  for i = 0, n - 1 do
    local class = ARGV[a + i * 5]
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

-- Per device, what the call changes; written once at the end.
local devs, order = {}, {}
-- Hashes stored by this call: for the recent list, and by slot (slot, hash, ... for HSET).
local hashes, pending, slotted, taken = {}, {}, {}, {}
local function device(dev)
  local d = devs[dev]
  if not d then
    local state = redis.call('HGET', p .. ':dev:' .. dev, 'presence')
    d = {state = state, new = not state, fields = {}, geo = nil, deadline = nil}
    devs[dev] = d
    table.insert(order, dev)
  end
  return d
end

local function accept(a)
  local dev, now, deadline, profile = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local dkey, h, check, online = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local topic, slot = ARGV[a + 8], ARGV[a + 9]
  local n = tonumber(ARGV[a + 10])
  local ev = a + 11
  if h ~= '' and check == '1' then
    -- A redelivery comes back under its packet id, which the broker has not given to another
    -- input since (however late it comes); the recent list covers inputs stored before slots
    -- were kept, and those without one.
    if slot ~= '' and (taken[slot] or redis.call('HGET', slots, slot)) == h then
      return {'dup'}
    end
    if pending[h] or redis.call('LPOS', recent, h) then
      return {'dup'}
    end
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
  if h ~= '' and slot ~= '' then
    taken[slot] = h
    table.insert(slotted, slot)
    table.insert(slotted, h)
  elseif h ~= '' then
    pending[h] = true
    table.insert(hashes, h)
  end
  local devkey = p .. ':dev:' .. dev
  local d = device(dev)
  local out = {'ok'}
  local seen = (n == 0)
  local function go_online()
    if d.state ~= 'online' then
      xadd(out, 'presence', online, now, 0)
      redis.call('HSET', devkey, 'presence', 'online', 'presence_json', online)
      d.state = 'online'
    end
  end
  if seen then go_online() end
  local went_offline = false
  for i = 0, n - 1 do
    local b = ev + i * 5
    local class, json, latest, lon, lat = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    if class == 'presence-off' then
      if d.state == 'online' then
        xadd(out, 'presence', json, now, i + 1)
        redis.call('HSET', devkey, 'presence', 'offline', 'presence_json', latest)
        d.state = 'offline'
        went_offline = true
      end
    else
      go_online()
      xadd(out, class, json, now, i + 1)
      d.fields[class] = latest
      if lon ~= '' then d.geo = {lon, lat} end
      seen = true
    end
  end
  if seen then
    d.fields['last_seen'] = now
    d.fields['profile'] = profile
    if topic ~= '' then d.fields['topic'] = topic end
    d.deadline = deadline
  elseif went_offline then
    d.deadline = false
  end
  return out
end

local replies = {}
local a = 9
for _ = 1, tonumber(ARGV[5]) do
  table.insert(replies, accept(a))
  a = a + 11 + 5 * tonumber(ARGV[a + 10])
end

-- The call's writes, batched: one HSET per device, one ZADD/ZREM, GEOADD, SADD, LPUSH and
-- stats update for all devices.
local zadd, zrem, geo, new = {}, {}, {}, {}
for _, dev in ipairs(order) do
  local d = devs[dev]
  local hs = {}
  for k, v in pairs(d.fields) do
    table.insert(hs, k)
    table.insert(hs, v)
  end
  if #hs > 0 then redis.call('HSET', p .. ':dev:' .. dev, unpack(hs)) end
  if d.deadline then
    table.insert(zadd, d.deadline)
    table.insert(zadd, dev)
  elseif d.deadline == false then
    table.insert(zrem, dev)
  end
  if d.geo then
    table.insert(geo, d.geo[1])
    table.insert(geo, d.geo[2])
    table.insert(geo, dev)
  end
  if d.new then table.insert(new, dev) end
end
if #zadd > 0 then redis.call('ZADD', p .. ':presence:deadline', unpack(zadd)) end
if #zrem > 0 then redis.call('ZREM', p .. ':presence:deadline', unpack(zrem)) end
if #geo > 0 then redis.call('GEOADD', p .. ':geo', unpack(geo)) end
if #new > 0 then redis.call('SADD', p .. ':devices', unpack(new)) end
if #slotted > 0 then redis.call('HSET', slots, unpack(slotted)) end
if #hashes > 0 then
  redis.call('LPUSH', recent, unpack(hashes))
  redis.call('LTRIM', recent, 0, cap - 1)
end
for _, c in ipairs(classes) do
  if accepted[c] > 0 then redis.call('HINCRBY', stats, 'accepted:' .. c, accepted[c]) end
end
return replies
