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
-- ARGV: 1 now ms (hub clock), 2 retention cutoff ms, 3 class, 4 n, 5 the attempt token naming
--   this handling of the batch ('' for none: sync's pages), 6 '1' when the ids are strictly
--   increasing (the caller checked), then per event: '0' (its score), '<padded id> <json>'.
-- Returns one flag per event as a string of '1' (newly stored) and '0' (already there, or
-- below the retention floor).
local ev, marks, meta, applied = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, cutoff, class, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local attempt, increasing = ARGV[5], ARGV[6] == '1'
-- A padded id is 41 bytes (`%020u-%020u`); member i is ARGV[8 + 2 * i].
local PID = 41
local function pid_of(i) return string.sub(ARGV[8 + 2 * i], 1, PID) end
if attempt ~= '' then
  local answered = redis.call('GET', applied)
  local head = attempt .. ' '
  if answered and #answered == #head + n and string.sub(answered, 1, #head) == head then
    return string.sub(answered, #head + 1)
  end
end
local floor = redis.call('HGET', meta, 'floor:' .. class) or ''
local top = redis.call('HGET', meta, 'top:' .. class) or ''
-- `ZADD ev` of list[from..to] (score, member pairs), in chunks well below Lua's C stack limit.
local CHUNK = 2000
local function zadd(list, from, to)
  for i = from, to, CHUNK do
    redis.call('ZADD', ev, unpack(list, i, math.min(i + CHUNK - 1, to)))
  end
end
local flags, stored
-- ' ' (0x20) ends the id inside a member and '!' (0x21) is the next byte: '[<id> ' to
-- '(<id>!' holds exactly the members of this id (of these ids, from the first to the last).
local first, last = n > 0 and pid_of(0), n > 0 and pid_of(n - 1)
if n > 0 and increasing and first > floor
  and (first > top or redis.call('ZLEXCOUNT', ev, '[' .. first .. ' ', '(' .. last .. '!') == 0) then
  -- No id of the batch is stored: above every stored one (the usual case: a gateway's batches
  -- follow each other), or a batch overtaken by a later one (the gateway has several in flight).
  -- All new, stored as they came without looking at each.
  zadd(ARGV, 7, 6 + 2 * n)
  flags, stored = string.rep('1', n), n
  if last > top then top = last end
else
  -- A batch some of whose ids are stored (republished, redelivered): an exact membership test
  -- per id.
  local out, members, mine = {}, {}, {}
  stored = 0
  for i = 0, n - 1 do
    local pid = pid_of(i)
    local new = '0'
    if pid > floor and not mine[pid]
      and #redis.call('ZRANGEBYLEX', ev, '[' .. pid .. ' ', '(' .. pid .. '!', 'LIMIT', 0, 1) == 0 then
      new, mine[pid], stored = '1', true, stored + 1
      members[#members + 1] = '0'
      members[#members + 1] = ARGV[8 + 2 * i]
      if pid > top then top = pid end
    end
    out[i + 1] = new
  end
  zadd(members, 1, #members)
  flags = table.concat(out)
end
if stored > 0 then
  redis.call('HSET', meta, 'top:' .. class, top, 'last_batch', now)
  redis.call('HINCRBY', meta, 'stored:' .. class, stored)
  -- One mark a minute: "by this time, ids up to here were stored".
  local mark = redis.call('ZRANGE', marks, -1, -1, 'WITHSCORES')
  if #mark == 0 or now - tonumber(mark[2]) >= 60000 then
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
if attempt ~= '' then redis.call('SET', applied, attempt .. ' ' .. flags, 'EX', 300) end
return flags
