-- Latest state of devices in one bucket (SPEC §7): per device and class the event with the
-- newest ts (ties: the higher gateway|id), the geo index, the device's track, last seen.
-- Every write is idempotent, so a redelivered batch (whose history was already stored) is
-- applied again harmlessly. All keys are under the bucket's hash tag.
-- KEYS: 1 device set, 2 geo, then per event: device hash, device track (sorted set by ts ms).
-- ARGV: 1 track cutoff ms, 2 n, then 8 per event: dev, class, gw, tie (padded id or ''),
--   ts ms, json, a, b (location: lon, lat; presence: state, last_seen ms).
local cutoff, n = tonumber(ARGV[1]), tonumber(ARGV[2])
-- Redis' geo index covers latitudes up to ±85.05112878 (Web Mercator).
local GEO_LAT = 85.05112878
for i = 0, n - 1 do
  local a = 3 + i * 8
  local dev, class, gw = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local tie = gw .. '|' .. ARGV[a + 3]
  local ts, json, x, y = tonumber(ARGV[a + 4]), ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local dk, tk = KEYS[3 + i * 2], KEYS[4 + i * 2]
  redis.call('SADD', KEYS[1], dev)
  local cur = redis.call('HMGET', dk, 'ts:' .. class, 'tie:' .. class, 'last_seen')
  local cts = tonumber(cur[1])
  if not cts or ts > cts or (ts == cts and tie > (cur[2] or '')) then
    redis.call('HSET', dk, class, json, 'ts:' .. class, ts, 'tie:' .. class, tie)
    if class == 'location' then
      local lon, lat = tonumber(x), tonumber(y)
      if lat and lon and math.abs(lat) <= GEO_LAT and math.abs(lon) <= 180 then
        redis.call('GEOADD', KEYS[2], lon, lat, dev)
      else
        redis.call('ZREM', KEYS[2], dev)
      end
    elseif class == 'presence' then
      redis.call('HSET', dk, 'presence', x)
    end
  end
  local seen = ts
  if class == 'presence' and tonumber(y) then seen = tonumber(y) end
  if not tonumber(cur[3]) or seen > tonumber(cur[3]) then
    redis.call('HSET', dk, 'last_seen', seen, 'gw', gw)
  end
  if class == 'location' and tie ~= gw .. '|' then
    redis.call('ZADD', tk, ts, json)
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', '(' .. cutoff)
  end
end
return n
