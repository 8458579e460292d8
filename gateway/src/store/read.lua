-- One drain pass's read (uplink/session.rs), in one atomic snapshot: the classes in priority
-- order (KEYS), each after its own cursor, until `slots` batches of `per_batch` entries are
-- filled. A class read short is exhausted and the next is read in the same snapshot, so one
-- input's lower-class event is never read without its higher-class ones (drain order, SPEC §6);
-- a class that fills what is left ends the pass. Reads only: nothing is replicated or logged.
-- KEYS: the outbox streams, highest priority first. ARGV: one start id per key (the cursor's
-- successor), then slots, then per_batch.
-- Returns one array of stream rows per class read, in KEYS order (fewer when the pass ended).
local n = #KEYS
local slots, per = tonumber(ARGV[n + 1]), tonumber(ARGV[n + 2])
local out = {}
for i = 1, n do
  if slots <= 0 then break end
  local want = slots * per
  local rows = redis.call('XRANGE', KEYS[i], ARGV[i], '+', 'COUNT', want)
  out[i] = rows
  if #rows < want then
    slots = slots - math.ceil(#rows / per)
  else
    break
  end
end
return out
