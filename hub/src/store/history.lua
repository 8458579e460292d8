-- Store one batch of one (gateway, class): each event at most once, a late batch below ids
-- already stored still stored (SPEC §5 amended rule, §7). Every key is under the gateway's
-- hash tag, so on Redis Cluster this one call is atomic.
-- KEYS: 1 history (sorted set, all scores 0, member '<padded id> <event json>', so lex order is
--   id order), 2 retention marks (sorted set: hub time ms -> padded id stored by then),
--   3 the gateway's meta hash, 4 this batch's answer (`…:applied:<class>:<first>:<last>:<n>`).
-- The answer is kept for 5 minutes with the attempt token: the same attempt calling again
-- (its reply was lost to a response timeout or a dropped connection) gets the first call's
-- flags, so what that call stored is still reported new (streamed, fed to TAK, its receipts
-- applied) instead of as a duplicate. Another attempt (a republished or redelivered batch)
-- is answered afresh: what is already stored is a duplicate.
-- ARGV: 1 now ms (hub clock), 2 retention cutoff ms, 3 class, 4 n, then per event: padded id, json,
--   then the attempt token naming this handling of the batch ('' for none: sync's pages).
-- Returns one flag per event: 1 newly stored, 0 already there (or below the retention floor).
local ev, marks, meta, applied = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, cutoff, class, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local attempt = ARGV[5 + 2 * n] or ''
if attempt ~= '' then
  local answered = redis.call('GET', applied)
  local head = attempt .. ' '
  if answered and #answered == #head + n and string.sub(answered, 1, #head) == head then
    local again = {}
    for i = 1, n do again[i] = tonumber(string.sub(answered, #head + i, #head + i)) end
    return again
  end
end
local floor = redis.call('HGET', meta, 'floor:' .. class) or ''
local top = redis.call('HGET', meta, 'top:' .. class) or ''
local out, stored = {}, 0
for i = 0, n - 1 do
  local pid, json = ARGV[5 + 2 * i], ARGV[6 + 2 * i]
  local new = 0
  -- ' ' (0x20) ends the id inside a member and '!' (0x21) is the next byte: the range holds
  -- exactly the members of this id.
  if pid > floor and #redis.call('ZRANGEBYLEX', ev, '[' .. pid .. ' ', '(' .. pid .. '!', 'LIMIT', 0, 1) == 0 then
    redis.call('ZADD', ev, 0, pid .. ' ' .. json)
    new, stored = 1, stored + 1
    if pid > top then top = pid end
  end
  out[i + 1] = new
end
if stored > 0 then
  redis.call('HSET', meta, 'top:' .. class, top, 'last_batch', now)
  redis.call('HINCRBY', meta, 'stored:' .. class, stored)
  -- One mark a minute: "by this time, ids up to here were stored".
  local last = redis.call('ZRANGE', marks, -1, -1, 'WITHSCORES')
  if #last == 0 or now - tonumber(last[2]) >= 60000 then
    redis.call('ZADD', marks, now, top)
  end
else
  redis.call('HSET', meta, 'last_batch', now)
end
if n > stored then
  redis.call('HINCRBY', meta, 'dups:' .. class, n - stored)
end
-- Retention: drop what was stored before the cutoff (by the hub's clock, not the gateway's:
-- a gateway whose clock is wrong must not have its events dropped as old).
local old = redis.call('ZREVRANGEBYSCORE', marks, cutoff, '-inf', 'LIMIT', 0, 1)
if #old == 1 then
  local x = old[1]
  redis.call('ZREMRANGEBYLEX', ev, '-', '(' .. x .. '!')
  redis.call('ZREMRANGEBYSCORE', marks, '-inf', cutoff)
  if x > floor then redis.call('HSET', meta, 'floor:' .. class, x) end
end
if attempt ~= '' then redis.call('SET', applied, attempt .. ' ' .. table.concat(out), 'EX', 300) end
return out
