-- Latest state of devices in one or more buckets (SPEC §7): per device and class the event with the
-- newest ts (ties: the higher gateway|id), the geo index, the device's track, last seen.
-- Every write is idempotent, so a redelivered batch (whose history was already stored) is
-- applied again harmlessly. On a Redis Cluster a call has one bucket, so all its keys are
-- under that bucket's hash tag; a single Redis takes every bucket of a batch in one call.
--
-- The receiver has already compared a batch's events among themselves (store/latest.rs): per
-- device it sends each class's newest event, the newest "seen" time and the fixes for the
-- track, each as a reference to its event in the gateway's history ('<padded id> <gw>'). Here each is compared with what is stored, and the writes are made once per device
-- (one HMGET, one HSET, one ZADD of its fixes) and once per call (one SADD, one GEOADD): every
-- write command is a line in the AOF and every call from Lua has its own cost.
--
-- KEYS: per bucket: device set, geo, then per device: device hash, device track (sorted set
--   of references, by ts ms).
-- ARGV: 1 track cutoff ms, 2 now ms, 3 number of buckets; per bucket: number of devices, then
--   per device:
--   dev, seen ms ('' for none), the gateway that saw it then, nc, nt; nc × (class, ts ms, tie
--   '<gw>|<padded id or "">', json, a, b) (location: a, b = lon, lat; presence: state,
--   last_seen ms); nt × (ts ms, reference).
local cutoff, now, nb = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
-- A device's track is trimmed at most once a minute (`track_trim` in its hash: when it was
-- last), not on every batch: a trim is a command of its own, and a batch that waited at the
-- gateway holds several updates of each device.
local TRIM_EVERY = 60000
-- Redis' geo index covers latitudes up to ±85.05112878 (Web Mercator).
local GEO_LAT = 85.05112878
-- `cmd key` with list[from..to] (all of it by default), in chunks well below Lua's C stack
-- limit.
local CHUNK = 2000
local function chunked(cmd, key, list, from, to)
  from, to = from or 1, to or #list
  for i = from, to, CHUNK do
    redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, to)))
  end
end
-- Appends the values to a list.
local function push(list, ...)
  for _, v in ipairs({ ... }) do list[#list + 1] = v end
end
local a, k, n = 4, 1, 0
for _ = 1, nb do
  local devices, geo_key, nd = KEYS[k], KEYS[k + 1], tonumber(ARGV[a])
  a, k = a + 1, k + 2
  local devs, geo, gone = {}, {}, {}
  for _ = 1, nd do
    local dev, seen, seen_gw = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    local nc, nt = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    a = a + 5
    local dk, tk = KEYS[k], KEYS[k + 1]
    k = k + 2
    local ask = { 'last_seen', 'track_trim' }
    for c = 0, nc - 1 do
      local class = ARGV[a + c * 6]
      ask[#ask + 1] = 'ts:' .. class
      ask[#ask + 1] = 'tie:' .. class
    end
    local cur = redis.call('HMGET', dk, unpack(ask))
    local set = {}
    for c = 0, nc - 1 do
      local b = a + c * 6
      -- Numbers are compared as numbers but written as the strings they came as (a Lua number
      -- would be formatted with printf again).
      local class, ts, tie = ARGV[b], ARGV[b + 1], ARGV[b + 2]
      local t, cts, ctie = tonumber(ts), tonumber(cur[3 + c * 2]), cur[4 + c * 2] or ''
      if not cts or t > cts or (t == cts and tie > ctie) then
        push(set, class, ARGV[b + 3], 'ts:' .. class, ts, 'tie:' .. class, tie)
        if class == 'location' then
          local lon, lat = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
          if lat and lon and math.abs(lat) <= GEO_LAT and math.abs(lon) <= 180 then
            push(geo, ARGV[b + 4], ARGV[b + 5], dev)
          else
            gone[#gone + 1] = dev
          end
        elseif class == 'presence' then
          push(set, 'presence', ARGV[b + 4])
        end
      end
    end
    a = a + nc * 6
    local s, last_seen = tonumber(seen), tonumber(cur[1])
    if s and (not last_seen or s > last_seen) then
      push(set, 'last_seen', seen, 'gw', seen_gw)
    end
    if nt > 0 then
      chunked('ZADD', tk, ARGV, a, a + nt * 2 - 1)
      local trimmed = tonumber(cur[2])
      if not trimmed or tonumber(now) - trimmed >= TRIM_EVERY then
        redis.call('ZREMRANGEBYSCORE', tk, '-inf', '(' .. cutoff)
        push(set, 'track_trim', now)
      end
    end
    if #set > 0 then redis.call('HSET', dk, unpack(set)) end
    a = a + nt * 2
    devs[#devs + 1] = dev
  end
  chunked('SADD', devices, devs)
  chunked('GEOADD', geo_key, geo)
  chunked('ZREM', geo_key, gone)
  n = n + nd
end
return n
