-- A region's hub acknowledged entries (SPEC §5, §9): move its cursors and trim each stream
-- behind the slowest region that is not lagging. A region whose oldest unacknowledged entry is
-- older than its max_lag stops holding the trim back: its cursor is moved to the trim point and
-- what it skipped is counted (`missed`), so the outbox does not grow for a lost region.
-- ARGV: 1 prefix, 2 this region's hash key, 3 now_ms, 4 '1' = also count stats delivered:<class>,
--   5 number of regions, then 3 per region: hash key, max_lag_ms, name; then the number of
--   moves, then 3 per move: class, id, n.
-- Returns, per lagging region, {name, events missed with this call, 1 if it started lagging now}.
local p, own, now, first = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local stats = p .. ':stats'
local nreg = tonumber(ARGV[5])
local regions = {}
for i = 0, nreg - 1 do
  local a = 6 + i * 3
  table.insert(regions, {key = ARGV[a], lag = tonumber(ARGV[a + 1]), name = ARGV[a + 2]})
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function lt(x, y)
  local a1, b1 = parse(x)
  local a2, b2 = parse(y)
  return a1 < a2 or (a1 == a2 and b1 < b2)
end
local function count_between(stream, after, upto)
  local n, cur = 0, after
  while true do
    local r = redis.call('XRANGE', stream, '(' .. cur, upto, 'COUNT', 1000)
    n = n + #r
    if #r < 1000 then return n end
    cur = r[#r][1]
  end
end
local out = {}
local function note(name, k, new)
  local e = out[name] or {name, 0, 0}
  e[2] = e[2] + k
  if new then e[3] = 1 end
  out[name] = e
end
redis.call('HDEL', own, 'lagging')
local m = 6 + nreg * 3
for i = 0, tonumber(ARGV[m]) - 1 do
  local b = m + 1 + i * 3
  local class, id, n = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local stream = p .. ':outbox:' .. class
  local field = 'acked:' .. class
  redis.call('HSET', own, field, id)
  redis.call('HINCRBY', own, 'delivered:' .. class, n)
  if first then redis.call('HINCRBY', stats, 'delivered:' .. class, n) end
  local min, lagging = nil, {}
  for _, r in ipairs(regions) do
    local c = (r.key == own) and id or (redis.call('HGET', r.key, field) or '0-0')
    local lag = false
    if r.key ~= own and redis.call('HGET', r.key, 'lagging') == '1' then
      lag = true -- stays lagging until it acknowledges again (its own ack clears the flag)
    elseif r.key ~= own then
      local nxt = redis.call('XRANGE', stream, '(' .. c, '+', 'COUNT', 1)
      if nxt[1] and parse(nxt[1][1]) < now - r.lag then lag = true end
    end
    if lag then
      table.insert(lagging, {r, c})
    elseif min == nil or lt(c, min) then
      min = c
    end
  end
  for _, l in ipairs(lagging) do
    local r, c = l[1], l[2]
    local k = 0
    if lt(c, min) then
      k = count_between(stream, c, min)
      redis.call('HINCRBY', stats, 'missed:' .. r.name, k)
      redis.call('HINCRBY', r.key, 'missed', k)
      redis.call('HSET', r.key, field, min)
    end
    note(r.name, k, redis.call('HSETNX', r.key, 'lagging', '1') == 1)
  end
  local ms, seq = parse(min)
  redis.call('XTRIM', stream, 'MINID', ms .. '-' .. (seq + 1))
end
local flat = {}
for _, e in pairs(out) do table.insert(flat, e) end
return flat
