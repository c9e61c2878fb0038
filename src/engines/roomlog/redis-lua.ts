/**
 * Lua scripts of the Redis RoomLog (see redis.ts for the key layout). Every script touches only the
 * keys of one room, which share a hash tag, so they run unchanged on a Redis Cluster.
 *
 * Window entries are message JSON built by concatenation: the client passes the JSON-encoded pieces
 * (tenant, room, from, event, data, idem) and the script inserts seq, epoch and ts, so `data` is never decoded
 * or re-encoded here. `"ts":` always precedes `"data":`, so the first `"ts":<digits>` of an entry is its
 * timestamp (a `"` inside a JSON string is escaped and cannot start that pattern).
 */

/** Shared prelude: KEYS meta, win, idem, idemq. `now` is Redis TIME in ms (one clock for every node). */
const PRELUDE = String.raw`
local meta, win, idem, idemq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function fmt(n) return string.format('%d', n) end

-- Creates the room's meta from (initSeq, initEpoch) if it is still missing; true when it exists now.
-- Left-overs of a lost sequence (window, idempotency ids) are dropped so nothing mixes epochs.
local function ensure(initSeq, initEpoch)
  if redis.call('EXISTS', meta) == 1 then return true end
  if initEpoch == '' then return false end
  redis.call('DEL', win, idem, idemq)
  redis.call('HSET', meta, 'seq', initSeq, 'epoch', initEpoch, 'ts', '0')
  return true
end

-- Drops window entries older than windowMs (oldest first; entries are in seq and ts order).
local function trimAge(windowMs)
  while true do
    local head = redis.call('LINDEX', win, 0)
    if not head then return end
    local ts = tonumber(string.match(head, '"ts":(%d+)'))
    if ts == nil or now - ts <= windowMs then return end
    redis.call('LPOP', win)
  end
end
`;

/**
 * append. ARGV: head (`{"tenant":…,"room":…,"seq":`), mid (`,"from":…,"ts":`), tail (`[,"event":…],"data":…[,"idem":…]}`),
 * idemField ('' = none), windowSize, windowMs, idemMs, idemMax, initSeq, initEpoch ('' = not given), maxPerSecond
 * ('0' = no cap). Returns {0, json} for a new message, {1, json} for a duplicate, {2} when the room has no state and
 * no init position was given (the client seeds and retries), {3} when the room's publish cap for the current second
 * (meta fields rs, rn) is reached: nothing is assigned.
 */
export const APPEND_LUA =
  PRELUDE +
  String.raw`
local head, mid, tail, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local windowSize, windowMs = tonumber(ARGV[5]), tonumber(ARGV[6])
local idemMs, idemMax = tonumber(ARGV[7]), tonumber(ARGV[8])
if not ensure(ARGV[9], ARGV[10]) then return {2} end

if field ~= '' then
  local first = redis.call('HGET', idem, field)
  if first then
    local at = redis.call('ZSCORE', idemq, field)
    if at and now - tonumber(at) <= idemMs then return {1, first} end
  end
end

local maxPerSecond = tonumber(ARGV[11]) or 0
if maxPerSecond > 0 then
  local second = fmt(math.floor(now / 1000))
  local counted = redis.call('HMGET', meta, 'rs', 'rn')
  local n = 0
  if counted[1] == second then n = tonumber(counted[2]) or 0 end
  if n >= maxPerSecond then return {3} end
  redis.call('HSET', meta, 'rs', second, 'rn', fmt(n + 1))
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
local epoch = redis.call('HGET', meta, 'epoch')
local ts = math.max(now, tonumber(redis.call('HGET', meta, 'ts') or '0') or 0)
redis.call('HSET', meta, 'ts', fmt(ts))
local msg = head .. fmt(seq) .. ',"epoch":' .. cjson.encode(epoch) .. mid .. fmt(ts) .. tail

if windowSize > 0 then
  redis.call('RPUSH', win, msg)
  redis.call('LTRIM', win, -windowSize, -1)
  trimAge(windowMs)
  redis.call('PEXPIRE', win, math.max(1, windowMs))
else
  redis.call('DEL', win)
end

if field ~= '' then
  redis.call('HSET', idem, field, msg)
  redis.call('ZADD', idemq, now, field)
  local old = redis.call('ZRANGEBYSCORE', idemq, '-inf', '(' .. fmt(now - idemMs), 'LIMIT', 0, 100)
  local excess = redis.call('ZCARD', idemq) - #old - idemMax
  if excess > 0 then
    for _, f in ipairs(redis.call('ZRANGE', idemq, #old, #old + excess - 1)) do table.insert(old, f) end
  end
  for _, f in ipairs(old) do
    redis.call('HDEL', idem, f)
    redis.call('ZREM', idemq, f)
  end
  redis.call('PEXPIRE', idem, math.max(1, idemMs))
  redis.call('PEXPIRE', idemq, math.max(1, idemMs))
end
return {0, msg}
`;

/**
 * read (since / range / position). ARGV: lo, hi (seq bounds of the entries to return; lo > hi = none),
 * windowMs, create ('1' = create missing state from init, '0' = report an empty room), initSeq,
 * initEpoch. Returns {2} like append when state is missing and must be created but no init was given;
 * {1} for a missing room when create is '0'; else {0, seq, epoch, firstSeq, entries…} where firstSeq is
 * the seq of the oldest window entry (seq + 1 when the window is empty).
 */
export const READ_LUA =
  PRELUDE +
  String.raw`
local lo, hi, windowMs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '1' and redis.call('EXISTS', meta) == 0 then return {1} end
if not ensure(ARGV[5], ARGV[6]) then return {2} end
trimAge(windowMs)
local seq = tonumber(redis.call('HGET', meta, 'seq'))
local epoch = redis.call('HGET', meta, 'epoch')
local len = redis.call('LLEN', win)
local first = seq - len + 1
local out = {0, fmt(seq), epoch, fmt(first)}
local from, to = math.max(lo, first) - first, math.min(hi, seq) - first
if from <= to then
  for _, m in ipairs(redis.call('LRANGE', win, from, to)) do table.insert(out, m) end
end
return out
`;

/**
 * fence: moves a room's sequence up to the durable log's newest seq (`floor`) when Redis has fallen behind it
 * (a replica promoted before it had the last increments). ARGV: floorSeq, floorEpoch, floorTs, windowSize,
 * windowMs, idemMs, mode ('probe' | 'apply'), then triples (seq, idemField or '', message JSON) of durable
 * messages, ascending. A probe changes nothing (except that a room without state is created at the floor) and
 * returns {1, cur} when the room's seq `cur` is below floorSeq, else {0, cur}. An apply restores the idempotency
 * ids of the given messages that Redis lacks (so a client retrying a message acked before the failover gets it
 * back instead of a second copy) and, when cur < floorSeq under the floor's epoch, moves seq to floorSeq and
 * returns {2, cur}; else {0, cur}. Another epoch means the room started over since: its sequence is not the
 * floor's, and is left alone. The messages above cur go into the recent window when they run without a hole up
 * to floorSeq (the window holds consecutive seqs ending at meta.seq: a hole empties it, and recovery then reads
 * history).
 */
export const FENCE_LUA =
  PRELUDE +
  String.raw`
local floorSeq, floorEpoch, floorTs = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local windowSize, windowMs, idemMs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local mode = ARGV[7]
if redis.call('EXISTS', meta) == 0 then
  ensure(fmt(floorSeq), floorEpoch)
  redis.call('HSET', meta, 'ts', fmt(floorTs))
  return {0, 0}
end
local cur = tonumber(redis.call('HGET', meta, 'seq'))
local behind = cur < floorSeq and redis.call('HGET', meta, 'epoch') == floorEpoch
if mode == 'probe' then
  if behind then return {1, cur} end
  return {0, cur}
end

local above = {}
for i = 8, #ARGV, 3 do
  local seq, field, msg = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  if seq <= floorSeq and field ~= '' and redis.call('HEXISTS', idem, field) == 0 then
    local at = tonumber(string.match(msg, '"ts":(%d+)')) or now
    if now - at <= idemMs then
      redis.call('HSET', idem, field, msg)
      redis.call('ZADD', idemq, at, field)
      redis.call('PEXPIRE', idem, math.max(1, idemMs))
      redis.call('PEXPIRE', idemq, math.max(1, idemMs))
    end
  end
  if seq > cur and seq <= floorSeq then table.insert(above, {seq, msg}) end
end
if not behind then return {0, cur} end

-- The run of messages above cur that ends at floorSeq without a hole goes into the window.
local run = #above + 1
local want = floorSeq
while run > 1 and above[run - 1][1] == want do
  run = run - 1
  want = want - 1
end
if want ~= cur then redis.call('DEL', win) end
if windowSize > 0 then
  for i = run, #above do redis.call('RPUSH', win, above[i][2]) end
  redis.call('LTRIM', win, -windowSize, -1)
  trimAge(windowMs)
  if redis.call('EXISTS', win) == 1 then redis.call('PEXPIRE', win, math.max(1, windowMs)) end
end
local ts = math.max(floorTs, tonumber(redis.call('HGET', meta, 'ts') or '0') or 0)
redis.call('HSET', meta, 'seq', fmt(floorSeq), 'ts', fmt(ts))
return {2, cur}
`;

/**
 * refused: the durable log refused a message this log sequenced, because another message already holds its seq
 * (the sequence had fallen behind). ARGV: seq, idemField ('' = none). Forgets the message's idempotency id when
 * it still names that seq (so a retry is sequenced anew instead of handed the refused seq again) and empties the
 * window, which may hold the refused message; recovery reads history until new messages refill it.
 */
export const REFUSED_LUA =
  PRELUDE +
  String.raw`
local seq, field = ARGV[1], ARGV[2]
if field ~= '' then
  local first = redis.call('HGET', idem, field)
  if first and string.match(first, '"seq":(%d+)') == seq then
    redis.call('HDEL', idem, field)
    redis.call('ZREM', idemq, field)
  end
end
redis.call('DEL', win)
return 0
`;
