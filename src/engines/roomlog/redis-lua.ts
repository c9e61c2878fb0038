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
 * idemField ('' = none), windowSize, windowMs, idemMs, idemMax, initSeq, initEpoch ('' = not given).
 * Returns {0, json} for a new message, {1, json} for a duplicate, {2} when the room has no state and
 * no init position was given (the client seeds and retries).
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
