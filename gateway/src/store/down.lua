-- The downlink queue (SPEC §8), every change atomic with the receipt it causes: a receipt is
-- an outbox entry of class `receipt`, written in the same script as the state it reports, so
-- it goes out exactly once however the gateway or Redis die. Layout: docs/redis-layout.md.
-- ARGV[1] prefix, ARGV[2] operation, then per operation:
--   accept: msg_id, expire_at_s (dedup memory), hash fields json ({"to":…}), now_ms,
--           n targets, then 4 per target: dev, state ('queued'|'failed'|'expired'),
--           expires_ms, receipt json
--           → 'dup' when the msg_id was seen before, else 'ok'
--   move:   msg_id, dev, allowed current states (comma list), new state, receipt json ('' = none)
--           → the state before (the move happened only if it was allowed), or '' if unknown
local p, op = ARGV[1], ARGV[2]
local stats = p .. ':down:stats'

local function receipt(json, state)
  redis.call('XADD', p .. ':outbox:receipt', '*', 'e', json)
  redis.call('HINCRBY', p .. ':stats', 'accepted:receipt', 1)
  redis.call('HINCRBY', stats, state, 1)
end

local function leave_queue(msg_id, dev)
  local q = p .. ':down:q:' .. dev
  redis.call('LREM', q, 1, msg_id)
  redis.call('ZREM', p .. ':down:expiry', msg_id .. ' ' .. dev)
  if redis.call('LLEN', q) == 0 then
    redis.call('SREM', p .. ':down:pending', dev)
  end
end

if op == 'accept' then
  local msg_id, expire_at, fields, now = ARGV[3], ARGV[4], cjson.decode(ARGV[5]), ARGV[6]
  local key = p .. ':down:msg:' .. msg_id
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', stats, 'bad:duplicate', 1)
    return 'dup'
  end
  for k, v in pairs(fields) do
    redis.call('HSET', key, k, v)
  end
  redis.call('HSET', key, 'rx', now)
  local n = tonumber(ARGV[7])
  for i = 0, n - 1 do
    local b = 8 + i * 4
    local dev, state, expires, json = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    redis.call('HSET', key, 'st:' .. dev, state)
    if state == 'queued' then
      redis.call('RPUSH', p .. ':down:q:' .. dev, msg_id)
      redis.call('SADD', p .. ':down:pending', dev)
      redis.call('ZADD', p .. ':down:expiry', expires, msg_id .. ' ' .. dev)
    end
    receipt(json, state)
  end
  redis.call('EXPIREAT', key, expire_at)
  return 'ok'
end

if op == 'move' then
  local msg_id, dev, allowed, new, json = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  local key = p .. ':down:msg:' .. msg_id
  local cur = redis.call('HGET', key, 'st:' .. dev)
  if not cur then return '' end
  local ok = false
  for s in string.gmatch(allowed, '[^,]+') do
    if s == cur then ok = true end
  end
  if not ok then return cur end
  redis.call('HSET', key, 'st:' .. dev, new)
  if new ~= 'queued' and new ~= 'sending' then
    leave_queue(msg_id, dev)
  end
  if json ~= '' then receipt(json, new) end
  return cur
end

return redis.error_reply('unknown operation ' .. tostring(op))
