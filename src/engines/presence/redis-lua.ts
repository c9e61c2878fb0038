/**
 * Lua scripts of the Redis PresenceStore (see redis.ts for the key layout). Each script touches the
 * keys of one room, one user or one node only (one hash tag), so each runs unchanged on a Redis Cluster.
 * Times are ms; ARGV `now` may be '' to use Redis TIME (one clock for every node).
 */

const CLOCK = String.raw`
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
`;

/**
 * Room script. KEYS: pres (zset `user\0connId` → last refresh), cnt (hash user → live connections),
 * recent (zset user → lastSeen of leavers), hook (hash: users reported to webhooks → 1, and field `\0` → 1
 * while the room is reported occupied), pend (zset: reported users who left → when).
 * ARGV: op, now, ttlMs, recentMs, recentMax, keyTtlMs, …
 * Every op first expires connections not refreshed for ttlMs; a user whose last connection goes is
 * remembered as a leaver with lastSeen = that connection's last refresh.
 * - join  (user, member) → 1 when it is the user's first live connection in the room, else 0
 * - leave (member, 'now' | 'score') → 1 when it was the user's last; lastSeen = now or its last refresh
 * - beat  (member…) refreshes the listed live members (never revives expired ones)
 * - members → { pres entries with scores, recent entries with scores (newest first) }
 * - hjoin (user, members '1'|'0') → { occupied 0|1, added 0|1, now }: reports the room occupied / the user added
 * - hsettle (graceMs, limit, members '1'|'0') → { removed users, vacated 0|1, next settle time (0: none), now,
 *   occupied 0|1 }
 * A reported user whose last connection goes (any op, expiry included) is put in pend with the time it went.
 */
export const ROOM_LUA =
  String.raw`
local pres, cnt, recent, hook, pend = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op = ARGV[1]
` +
  CLOCK +
  String.raw`
local ttl, recentMs, recentMax, keyTtl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local function userOf(member)
  local i = string.find(member, '\0', 1, true)
  return string.sub(member, 1, i - 1)
end

local function remember(user, at)
  redis.call('ZADD', recent, fmt(at), user)
  redis.call('ZREMRANGEBYRANK', recent, 0, -(recentMax + 1))
  redis.call('PEXPIRE', recent, math.max(1, recentMs))
end

local function drop(member, at)
  if redis.call('ZREM', pres, member) == 0 then return 0 end
  local user = userOf(member)
  if redis.call('HINCRBY', cnt, user, -1) > 0 then return 0 end
  redis.call('HDEL', cnt, user)
  remember(user, at)
  if redis.call('HEXISTS', hook, user) == 1 then
    redis.call('ZADD', pend, fmt(at), user)
    redis.call('PEXPIRE', pend, keyTtl)
  end
  return 1
end

if redis.call('EXISTS', pres) == 0 then
  redis.call('DEL', cnt)
else
  -- ascending scores: a user's last stale connection is dropped last, with the latest refresh
  local stale = redis.call('ZRANGEBYSCORE', pres, '-inf', '(' .. fmt(now - ttl), 'WITHSCORES')
  for i = 1, #stale, 2 do drop(stale[i], tonumber(stale[i + 1])) end
end

if op == 'join' then
  local user, member = ARGV[7], ARGV[8]
  local changed = 0
  if redis.call('ZADD', pres, fmt(now), member) == 1 and redis.call('HINCRBY', cnt, user, 1) == 1 then
    redis.call('ZREM', recent, user)
    changed = 1
  end
  redis.call('PEXPIRE', pres, keyTtl)
  redis.call('PEXPIRE', cnt, keyTtl)
  return changed
elseif op == 'leave' then
  local member, at = ARGV[7], now
  if ARGV[8] == 'score' then at = tonumber(redis.call('ZSCORE', pres, member) or now) end
  return drop(member, at)
elseif op == 'beat' then
  for i = 7, #ARGV do redis.call('ZADD', pres, 'XX', fmt(now), ARGV[i]) end
  redis.call('PEXPIRE', pres, keyTtl)
  redis.call('PEXPIRE', cnt, keyTtl)
  return 0
elseif op == 'members' then
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', '(' .. fmt(now - recentMs))
  return { redis.call('ZRANGE', pres, 0, -1, 'WITHSCORES'), redis.call('ZREVRANGE', recent, 0, -1, 'WITHSCORES') }
elseif op == 'hjoin' then
  local user, members = ARGV[7], ARGV[8]
  local occupied, added = 0, 0
  if redis.call('HLEN', cnt) > 0 and redis.call('HSETNX', hook, '\0', '1') == 1 then occupied = 1 end
  if members == '1' and redis.call('HEXISTS', cnt, user) == 1 then
    redis.call('ZREM', pend, user)
    if redis.call('HSETNX', hook, user, '1') == 1 then added = 1 end
  end
  redis.call('PEXPIRE', hook, keyTtl)
  return { occupied, added, fmt(now) }
elseif op == 'hsettle' then
  local grace, limit, members = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
  local removed, vacated, occupied, nextAt = {}, 0, 0, 0
  local function soon(t) if nextAt == 0 or t < nextAt then nextAt = t end end
  local due = redis.call('ZRANGEBYSCORE', pend, '-inf', fmt(now - grace), 'LIMIT', 0, limit)
  for _, user in ipairs(due) do
    redis.call('ZREM', pend, user)
    if redis.call('HEXISTS', cnt, user) == 0 and redis.call('HDEL', hook, user) == 1 then table.insert(removed, user) end
  end
  local first = redis.call('ZRANGE', pend, 0, 0, 'WITHSCORES')
  if #first > 0 then soon(tonumber(first[2]) + grace) end
  if redis.call('HLEN', cnt) > 0 then
    if redis.call('HSETNX', hook, '\0', '1') == 1 then occupied = 1 end
    local oldest = redis.call('ZRANGE', pres, 0, 0, 'WITHSCORES')
    if #oldest > 0 then soon(tonumber(oldest[2]) + ttl + 1) end
  elseif redis.call('HEXISTS', hook, '\0') == 1 then
    local last = redis.call('ZREVRANGE', recent, 0, 0, 'WITHSCORES')
    local emptied = 0
    if #last > 0 then emptied = tonumber(last[2]) end
    if emptied <= now - grace then
      -- every reported user goes with the room (removed first), whatever is still pending for them
      for _, user in ipairs(redis.call('HKEYS', hook)) do
        if user ~= '\0' then table.insert(removed, user) end
      end
      redis.call('DEL', hook, pend)
      vacated = 1
      nextAt = 0
    else
      soon(emptied + grace)
    end
  end
  if members ~= '1' then
    -- the room's members are not reported (any more): only its occupancy is kept
    for _, user in ipairs(redis.call('HKEYS', hook)) do
      if user ~= '\0' then redis.call('HDEL', hook, user) end
    end
    redis.call('DEL', pend)
  end
  if redis.call('EXISTS', hook) == 1 then redis.call('PEXPIRE', hook, keyTtl) end
  return { removed, vacated, fmt(nextAt), fmt(now), occupied }
end
return redis.error_reply('unknown op ' .. op)
`;

/**
 * Settle schedule script. KEYS: due (zset `tenant\0room` → when the room is to be settled). ARGV: op, now, …
 * - watch (member, delayMs): schedules at now + delay unless an earlier time is pending
 * - claim (limit, leaseMs) → { member, lease time, … }: the due rooms, each rescheduled at now + lease (taken)
 * - finish (member, lease, next): the claim's result: at `next` (0: forget) if still at `lease`; else (watched
 *   again meanwhile) the earlier of the two
 */
export const DUE_LUA =
  String.raw`
local due, op = KEYS[1], ARGV[1]
` +
  CLOCK +
  String.raw`
if op == 'watch' then
  local at = now + tonumber(ARGV[4])
  local cur = tonumber(redis.call('ZSCORE', due, ARGV[3]) or '0')
  if cur == 0 or at < cur then redis.call('ZADD', due, fmt(at), ARGV[3]) end
  return 0
elseif op == 'claim' then
  local limit, lease = tonumber(ARGV[3]), now + tonumber(ARGV[4])
  local items = redis.call('ZRANGEBYSCORE', due, '-inf', fmt(now), 'LIMIT', 0, limit)
  local out = {}
  for _, m in ipairs(items) do
    redis.call('ZADD', due, fmt(lease), m)
    table.insert(out, m)
  end
  table.insert(out, fmt(lease))
  return out
elseif op == 'finish' then
  local m, lease, nextAt = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local cur = tonumber(redis.call('ZSCORE', due, m) or '0')
  if cur == lease or cur == 0 then
    if nextAt > 0 then redis.call('ZADD', due, fmt(nextAt), m) else redis.call('ZREM', due, m) end
  elseif nextAt > 0 and nextAt < cur then
    redis.call('ZADD', due, fmt(nextAt), m)
  end
  return 0
end
return redis.error_reply('unknown op ' .. op)
`;

/**
 * User script. KEYS: conns (zset connId → last refresh), seen (string: lastSeen of the user's removed
 * connections, expiring recentMs after it). ARGV: op, now, ttlMs, recentMs, keyTtlMs, …
 * Every op first expires connections not refreshed for ttlMs (lastSeen = their last refresh).
 * - add (connId) registers or refreshes a connection (an expired one starts afresh)
 * - beat (connId…) refreshes the live ones; returns the ids that are not live (unknown or expired)
 * - remove (connId) forgets a connection; lastSeen = now if it was live
 * - read → { live connections, lastSeen }
 */
export const USER_LUA =
  String.raw`
local conns, seen = KEYS[1], KEYS[2]
local op = ARGV[1]
` +
  CLOCK +
  String.raw`
local ttl, recentMs, keyTtl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function setSeen(at)
  local old = tonumber(redis.call('GET', seen) or '0') or 0
  if at <= old then return end
  redis.call('SET', seen, fmt(at))
  redis.call('PEXPIREAT', seen, fmt(at + recentMs))
end

local cutoff = '(' .. fmt(now - ttl)
local stale = redis.call('ZRANGEBYSCORE', conns, '-inf', cutoff, 'WITHSCORES')
if #stale > 0 then
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', cutoff)
  setSeen(tonumber(stale[#stale]))
end

if op == 'add' then
  redis.call('ZADD', conns, fmt(now), ARGV[6])
  redis.call('PEXPIRE', conns, keyTtl)
  return 0
elseif op == 'beat' then
  local dead = {}
  for i = 6, #ARGV do
    if redis.call('ZADD', conns, 'XX', 'CH', fmt(now), ARGV[i]) == 0 and not redis.call('ZSCORE', conns, ARGV[i]) then
      table.insert(dead, ARGV[i])
    end
  end
  redis.call('PEXPIRE', conns, keyTtl)
  return dead
elseif op == 'remove' then
  if redis.call('ZREM', conns, ARGV[6]) == 1 then setSeen(now) end
  return 0
elseif op == 'read' then
  local top = redis.call('ZREVRANGE', conns, 0, 0, 'WITHSCORES')
  local last = tonumber(redis.call('GET', seen) or '0') or 0
  if #top > 0 then last = math.max(last, tonumber(top[2])) end
  return { redis.call('ZCARD', conns), fmt(last) }
end
return redis.error_reply('unknown op ' .. op)
`;

/**
 * Node script. KEYS: reg (hash connId → `tenant\0user[\0room…]`: the node's connections and the rooms
 * each joined). ARGV: op, keyTtlMs, connId, …
 * - add (tenant, user, room | '') registers the connection and adds the room if not listed
 * - unjoin ('', '', room) removes the room from an existing entry (creates nothing)
 */
export const NODE_LUA = String.raw`
local reg, op, ttl, id = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local function has(v, room)
  local needle = '\0' .. room
  local i = 1
  while true do
    local j = string.find(v, needle, i, true)
    if not j then return false end
    local k = j + #needle
    if k > #v or string.sub(v, k, k) == '\0' then return j end
    i = j + 1
  end
end

-- length of the tenant\0user head of an entry
local function headLen(v)
  local i = string.find(v, '\0', 1, true)
  local j = i and string.find(v, '\0', i + 1, true)
  if j then return j - 1 end
  return #v
end

local v = redis.call('HGET', reg, id)
local room = ARGV[6]
if op == 'add' then
  if not v then v = ARGV[4] .. '\0' .. ARGV[5] end
  if room ~= '' and not has(string.sub(v, headLen(v) + 1), room) then v = v .. '\0' .. room end
  redis.call('HSET', reg, id, v)
  redis.call('PEXPIRE', reg, ttl)
  return 0
elseif op == 'unjoin' then
  if not v then return 0 end
  local head = headLen(v)
  local rooms = string.sub(v, head + 1)
  local j = has(rooms, room)
  if j then
    rooms = string.sub(rooms, 1, j - 1) .. string.sub(rooms, j + 1 + #room)
    redis.call('HSET', reg, id, string.sub(v, 1, head) .. rooms)
  end
  return 0
end
return redis.error_reply('unknown op ' .. op)
`;
