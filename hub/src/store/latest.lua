-- Latest state of devices in one bucket (SPEC §7): per device and class the event with the
-- newest ts (ties: the higher gateway|id), the geo index, the device's track, last seen.
-- Every write is idempotent, so a redelivered batch (whose history was already stored) is
-- applied again harmlessly. All keys are under the bucket's hash tag.
-- KEYS: 1 device set, 2 geo, then per event: device hash, device track (sorted set by ts ms).
-- ARGV: 1 track cutoff ms, 2 n, then 8 per event: dev, class, gw, tie (padded id or ''),
--   ts ms, json, a, b (location: lon, lat; presence: state, last_seen ms).
--
-- The events are compared one by one, in order, against what is stored and what came before
-- them in this call; the writes are gathered and made once per device at the end (one HSET,
-- one GEOADD, one ZADD of all its fixes): a gateway's batch carries several fixes per device,
-- and every write command is a line in the AOF.
local cutoff, n = tonumber(ARGV[1]), tonumber(ARGV[2])
-- Redis' geo index covers latitudes up to ±85.05112878 (Web Mercator).
local GEO_LAT = 85.05112878
local devs, order = {}, {}
for i = 0, n - 1 do
  local a = 3 + i * 8
  local dev, class, gw = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local tie = gw .. '|' .. ARGV[a + 3]
  local ts, json, x, y = tonumber(ARGV[a + 4]), ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local d = devs[dev]
  if not d then
    d = { dk = KEYS[3 + i * 2], tk = KEYS[4 + i * 2], classes = {}, set = {}, track = {} }
    d.last_seen = tonumber(redis.call('HGET', d.dk, 'last_seen'))
    devs[dev] = d
    order[#order + 1] = dev
  end
  local c = d.classes[class]
  if not c then
    local cur = redis.call('HMGET', d.dk, 'ts:' .. class, 'tie:' .. class)
    c = { ts = tonumber(cur[1]), tie = cur[2] or '' }
    d.classes[class] = c
  end
  if not c.ts or ts > c.ts or (ts == c.ts and tie > c.tie) then
    c.ts, c.tie = ts, tie
    d.set[class], d.set['ts:' .. class], d.set['tie:' .. class] = json, ts, tie
    if class == 'location' then
      local lon, lat = tonumber(x), tonumber(y)
      if lat and lon and math.abs(lat) <= GEO_LAT and math.abs(lon) <= 180 then
        d.geo = { lon, lat }
      else
        d.geo = false
      end
    elseif class == 'presence' then
      d.set['presence'] = x
    end
  end
  local seen = ts
  if class == 'presence' and tonumber(y) then seen = tonumber(y) end
  if not d.last_seen or seen > d.last_seen then
    d.last_seen = seen
    d.set['last_seen'], d.set['gw'] = seen, gw
  end
  if class == 'location' and tie ~= gw .. '|' then
    d.track[#d.track + 1] = ts
    d.track[#d.track + 1] = json
  end
end
for _, dev in ipairs(order) do
  local d = devs[dev]
  redis.call('SADD', KEYS[1], dev)
  local fields = {}
  for k, v in pairs(d.set) do
    fields[#fields + 1] = k
    fields[#fields + 1] = v
  end
  if #fields > 0 then redis.call('HSET', d.dk, unpack(fields)) end
  if d.geo then
    redis.call('GEOADD', KEYS[2], d.geo[1], d.geo[2], dev)
  elseif d.geo == false then
    redis.call('ZREM', KEYS[2], dev)
  end
  if #d.track > 0 then
    redis.call('ZADD', d.tk, unpack(d.track))
    redis.call('ZREMRANGEBYSCORE', d.tk, '-inf', '(' .. cutoff)
  end
end
return n
