"""Lua scripts: every multi-key state change is one atomic script.

Each script validates everything before its first write, because Redis does not roll back a script
that fails half way. All keys come in through KEYS.
"""

from __future__ import annotations

# Shared by scripts that make work runnable: wake an idle dispatcher if one is waiting, otherwise
# ask the caller to enqueue a dispatch job unless one is already queued.
_WAKE = """
local function wake(idle_key, wake_key, flag_key, now_ms, flag_ttl)
  if redis.call('ZCOUNT', idle_key, now_ms, '+inf') > 0 then
    redis.call('LPUSH', wake_key, '1')
    redis.call('LTRIM', wake_key, 0, 63)
    return 0
  end
  if redis.call('SET', flag_key, '1', 'NX', 'PX', flag_ttl) then
    return 1
  end
  return 0
end
"""

CREATE = (
    _WAKE
    + """
-- KEYS: 1 state, 2 events, 3 feed, 4 sched, 5 idx status, 6 idx all, 7 idx def, 8 idx corr,
--       9 idempotency key, 10 idle, 11 wake, 12 queued flag
-- ARGV: 1 wid, 2 snapshot, 3 event json, 4 event type, 5 created ms, 6 now ms, 7 feed maxlen,
--       8 use idempotency (0/1), 9 idempotency ttl s, 10 workflow type, 11 correlation id,
--       12 flag ttl ms, 13 version, 14 schedule (0/1)
-- Returns {1, wid, enqueue} created; {0, existing wid, 0} idempotent repeat; {-1, wid, 0} id taken
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[9])
  if existing then return {0, existing, 0} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, ARGV[1], 0} end
redis.call('HSET', KEYS[1], 'v', ARGV[13], 'sv', ARGV[13], 'fence', 0, 'snap', ARGV[2], 'status', 'CREATED',
  'type', ARGV[10], 'created', ARGV[5], 'updated', ARGV[6], 'corr', ARGV[11], 'lease_until', 0)
redis.call('XADD', KEYS[2], '*', 'v', ARGV[13], 't', ARGV[4], 'd', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'wf', ARGV[1], 'v', ARGV[13], 't', ARGV[4], 'd', ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[5], ARGV[1])
if ARGV[8] == '1' then
  redis.call('SET', KEYS[9], ARGV[1], 'EX', ARGV[9])
end
local enqueue = 0
if ARGV[14] == '1' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
  enqueue = wake(KEYS[10], KEYS[11], KEYS[12], ARGV[6], ARGV[12])
end
return {1, ARGV[1], enqueue}
"""
)

COMMIT = (
    _WAKE
    + """
-- KEYS: 1 state, 2 events, 3 feed, 4 sched, 5 idx old status, 6 idx new status, 7 idx attention,
--       8 idle, 9 wake, 10 queued flag, 11.. semantic lock keys
-- ARGV: 1 wid, 2 mode ('run' | 'ctl'), 3 fence, 4 expected version, 5 snapshot, 6 new status,
--       7 old status, 8 sched op ('keep' | 'set' | 'del' | 'wake'), 9 sched score ms, 10 now ms,
--       (5: '' keeps the stored snapshot: readers replay the events after its version 'sv')
--       11 feed maxlen, 12 created ms, 13 attention ('1' | '0' | ''), 14 lock op ('none' |
--       'acquire' | 'release'), 15 flag ttl ms, 16 event count, then (type, json) per event
-- Returns {1, enqueue} | {-1, stored version} conflict | {-2, stored fence} lease lost |
--         {-3} unknown workflow | {-4, holder, lock key} lock busy
local st = redis.call('HMGET', KEYS[1], 'v', 'fence', 'lease_until')
if not st[1] then return {-3} end
if ARGV[2] == 'run' and st[2] ~= ARGV[3] then return {-2, st[2]} end
if tonumber(st[1]) ~= tonumber(ARGV[4]) then return {-1, st[1]} end
if ARGV[14] == 'acquire' then
  for i = 11, #KEYS do
    local holder = redis.call('GET', KEYS[i])
    if holder and holder ~= ARGV[1] then return {-4, holder, KEYS[i]} end
  end
  for i = 11, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
elseif ARGV[14] == 'release' then
  for i = 11, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
  end
end
local n = tonumber(ARGV[16])
local v = tonumber(ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'v', v + n, 'sv', v + n, 'snap', ARGV[5], 'status', ARGV[6], 'updated', ARGV[10])
else
  redis.call('HSET', KEYS[1], 'v', v + n, 'status', ARGV[6], 'updated', ARGV[10])
end
for i = 1, n do
  local t = ARGV[15 + 2 * i]
  local d = ARGV[16 + 2 * i]
  redis.call('XADD', KEYS[2], '*', 'v', v + i, 't', t, 'd', d)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[11], '*', 'wf', ARGV[1], 'v', v + i, 't', t, 'd', d)
end
if ARGV[6] ~= ARGV[7] then
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZADD', KEYS[6], ARGV[12], ARGV[1])
end
if ARGV[13] == '1' then
  redis.call('ZADD', KEYS[7], 'NX', ARGV[10], ARGV[1])
elseif ARGV[13] == '0' then
  redis.call('ZREM', KEYS[7], ARGV[1])
end
local enqueue = 0
local op = ARGV[8]
if op == 'set' then
  redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1])
  if ARGV[2] == 'run' then redis.call('HSET', KEYS[1], 'lease_until', 0) end
elseif op == 'del' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('HSET', KEYS[1], 'lease_until', 0)
elseif op == 'wake' then
  if tonumber(st[3] or '0') <= tonumber(ARGV[10]) then
    redis.call('ZADD', KEYS[4], ARGV[10], ARGV[1])
    enqueue = wake(KEYS[8], KEYS[9], KEYS[10], ARGV[10], ARGV[15])
  end
end
return {1, enqueue}
"""
)

CLAIM = """
-- KEYS: 1 sched, 2 idle
-- ARGV: 1 now ms, 2 lease until ms, 3 max count, 4 dispatcher id, 5 idle until ms
-- Returns {n, more, id...}; with n = 0: {0, next due ms or ''} after registering as idle
redis.call('ZREM', KEYS[2], ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  if tonumber(ARGV[5]) > 0 then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4]) end
  local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, nxt[2] or ''}
end
for i = 1, #ids do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ids[i]) end
local more = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
local out = {#ids, #more}
for i = 1, #ids do out[#out + 1] = ids[i] end
return out
"""

ACQUIRE = """
-- KEYS: 1 state, 2 sched, 3 events
-- ARGV: 1 wid, 2 owner, 3 lease until ms
-- Returns {fence, version, snapshot, snapshot version, tail entries newest first...} or {0} when the
-- workflow no longer exists. The tail is the events after the snapshot.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'lease_until', ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'v', 'snap', 'sv')
local out = {fence, st[1], st[2], st[3] or st[1]}
local behind = tonumber(st[1]) - tonumber(st[3] or st[1])
if behind > 0 then
  local tail = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', behind)
  for i = 1, #tail do out[#out + 1] = tail[i][2] end
end
return out
"""

READ = """
-- KEYS: 1 state, 2 events
-- Returns {} for an unknown workflow, else {version, snapshot, snapshot version, fence, owner,
-- lease until, tail entries newest first...}: atomically, so no commit slips between the two.
local st = redis.call('HMGET', KEYS[1], 'v', 'snap', 'sv', 'fence', 'owner', 'lease_until')
if not st[1] then return {} end
local out = {st[1], st[2], st[3] or st[1], st[4] or '0', st[5] or '', st[6] or '0'}
local behind = tonumber(st[1]) - tonumber(st[3] or st[1])
if behind > 0 then
  local tail = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', behind)
  for i = 1, #tail do out[#out + 1] = tail[i][2] end
end
return out
"""

RENEW = """
-- KEYS: 1 state, 2 sched
-- ARGV: 1 wid, 2 fence, 3 lease until ms
-- Extends a held lease; a released (lease_until 0) or fenced-out lease is left alone.
local st = redis.call('HMGET', KEYS[1], 'fence', 'lease_until')
if st[1] ~= ARGV[2] or tonumber(st[2] or '0') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

RELEASE = """
-- KEYS: 1 state, 2 sched
-- ARGV: 1 wid, 2 fence, 3 next look ms
-- Hands back a workflow this worker claimed but will not run (shutdown): runnable again at once.
local st = redis.call('HGET', KEYS[1], 'fence')
if st ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', 0)
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
"""

EXIT = """
-- KEYS: 1 idle, 2 wake, 3 sched
-- ARGV: 1 dispatcher id, 2 now ms
-- A dispatcher may stop only if no wake token is waiting and nothing is due; atomic with CREATE's
-- check of idle dispatchers, so no start is left without a dispatcher.
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('LLEN', KEYS[2]) > 0 then return 1 end
if #redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, 1) > 0 then return 1 end
return 0
"""

TICK = (
    _WAKE
    + """
-- KEYS: 1 sched, 2 idle, 3 wake, 4 queued flag
-- ARGV: 1 now ms, 2 flag ttl ms
-- Safety net: if work is due, wake a dispatcher or ask for a dispatch job.
if #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1) == 0 then return 0 end
return wake(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
"""
)

SAVE_DEFINITION = """
-- KEYS: 1 definitions hash, 2 versions zset of the name, 3 active set, 4 content hashes hash
-- ARGV: 1 name, 2 requested version (0 = next), 3 definition json with the version as "__V__",
--       4 content hash, 5 active (0/1)
-- Returns {version, 1} created | {version, 0} same content already stored |
--         {-1, version} that version exists with other content
local requested = tonumber(ARGV[2])
if requested == 0 then
  local latest = redis.call('ZREVRANGE', KEYS[2], 0, 0)
  if #latest > 0 then
    if redis.call('HGET', KEYS[4], ARGV[1] .. ':' .. latest[1]) == ARGV[4] then
      return {tonumber(latest[1]), 0}
    end
    requested = tonumber(latest[1]) + 1
  else
    requested = 1
  end
else
  local stored = redis.call('HGET', KEYS[4], ARGV[1] .. ':' .. requested)
  if stored then
    if stored == ARGV[4] then return {requested, 0} end
    return {-1, requested}
  end
end
local id = ARGV[1] .. ':' .. requested
local json = string.gsub(ARGV[3], '"__V__"', tostring(requested))
redis.call('HSET', KEYS[1], id, json)
redis.call('HSET', KEYS[4], id, ARGV[4])
redis.call('ZADD', KEYS[2], requested, requested)
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], id) end
return {requested, 1}
"""

# ---------------------------------------------------------------------------- services
_BREAKER_EVENT = """
local function breaker_event(feed, maxlen, kind, service, now_ms, data)
  redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 'wf', '', 'v', 0, 't', kind,
    'd', cjson.encode({service = service, at = tonumber(now_ms) / 1000.0, data = data}))
end
"""

BREAKER_BEGIN = """
-- KEYS: 1 breaker hash, 2 sticky key (a placeholder when not sticky), 3 drain key, 4.. in-flight
--       zset of each candidate (healthy) instance
-- ARGV: 1 now ms, 2 call token, 3 token expiry ms, 4 open ms, 5 half-open trial calls,
--       6 sticky (0/1), 7 sticky ttl s, 8 target utilization, then (instance id, capacity) pairs
-- Admits a call through the service's circuit breaker and picks its instance (the sticky one while
-- under the target utilization and not being drained, else the least utilized), counting it in
-- flight there. Returns {1, instance, state, 0, trial} | {0, 'open', state, retry after ms, 0} |
-- {-1, 'no healthy instance', state, 0, 0}
-- The effective state (forced OPEN; OPEN past open_until is HALF_OPEN) is also computed, for readers,
-- by engine.domain.services.circuit_state: this copy decides atomically. Change both together.
local now = tonumber(ARGV[1])
local b = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'half_calls', 'forced', 'changed')
local state = b[1] or 'CLOSED'
local forced = b[4] or ''
local trial = 0
if forced == 'OPEN' then
  return {0, 'forced open', 'OPEN', tonumber(ARGV[4]), 0}
end
if forced ~= 'CLOSED' then
  if state == 'OPEN' then
    local until_ms = tonumber(b[2] or '0')
    if now < until_ms then return {0, 'open', state, until_ms - now, 0} end
    state = 'HALF_OPEN'
    redis.call('HSET', KEYS[1], 'state', state, 'half_calls', 0, 'half_ok', 0, 'changed', now)
    b[3] = '0'
  end
  -- No instance to call: refuse before taking a trial slot, which nothing would ever give back.
  if state == 'HALF_OPEN' and #ARGV < 10 then return {-1, 'no healthy instance', state, 0, 0} end
  if state == 'HALF_OPEN' then
    local admitted = tonumber(b[3] or '0')
    if admitted >= tonumber(ARGV[5]) then
      -- Trial calls that never reported (a worker died) must not hold the breaker half open forever.
      if now - tonumber(b[5] or '0') < tonumber(ARGV[4]) then
        return {0, 'half open: trial calls in flight', state, 200, 0}
      end
      redis.call('HSET', KEYS[1], 'half_calls', 0, 'half_ok', 0, 'changed', now)
      admitted = 0
    end
    redis.call('HSET', KEYS[1], 'half_calls', admitted + 1)
    trial = 1
  end
end
local n = (#ARGV - 8) / 2
if n < 1 then return {-1, 'no healthy instance', state, 0, 0} end
local sticky = ''
if ARGV[6] == '1' then
  sticky = redis.call('GET', KEYS[2]) or ''
  if sticky ~= '' and sticky == (redis.call('GET', KEYS[3]) or '') then sticky = '' end
end
local target = tonumber(ARGV[8])
local best, best_util, best_key = nil, nil, nil
for i = 1, n do
  local id = ARGV[7 + 2 * i]
  local cap = tonumber(ARGV[8 + 2 * i])
  local key = KEYS[3 + i]
  local util = redis.call('ZCOUNT', key, now, '+inf') / cap
  if id == sticky and util < target then
    best, best_util, best_key = id, util, key
    break
  end
  if best_util == nil or util < best_util then
    best, best_util, best_key = id, util, key
  end
end
redis.call('ZADD', best_key, ARGV[3], ARGV[2])
if ARGV[6] == '1' then redis.call('SET', KEYS[2], best, 'EX', ARGV[7]) end
return {1, best, state, 0, trial}
"""

BREAKER_END = (
    _BREAKER_EVENT
    + """
-- KEYS: 1 breaker hash, 2 window list, 3 in-flight zset of the instance called, 4 feed
-- ARGV: 1 now ms, 2 call token, 3 outcome ('ok' | 'fail'), 4 trial (0/1), 5 window size,
--       6 min calls, 7 failure rate, 8 open ms, 9 half-open trial calls, 10 service, 11 feed maxlen
-- Records a call's outcome in the count-based window and moves the breaker: CLOSED opens at the
-- failure rate once the window holds min calls; a HALF_OPEN trial failure re-opens it, enough
-- trial successes close it. Returns {state, transition ('' | 'OPENED' | 'CLOSED')}
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
local failed = ARGV[3] == 'fail'
redis.call('HINCRBY', KEYS[1], 'calls', 1)
if failed then redis.call('HINCRBY', KEYS[1], 'failures', 1) end
local b = redis.call('HMGET', KEYS[1], 'state', 'forced')
local state = b[1] or 'CLOSED'
if (b[2] or '') ~= '' then return {state, ''} end
local function open(rate, calls)
  redis.call('HSET', KEYS[1], 'state', 'OPEN', 'open_until', now + tonumber(ARGV[8]), 'opened_at', now,
    'changed', now, 'half_calls', 0, 'half_ok', 0)
  redis.call('HINCRBY', KEYS[1], 'trips', 1)
  redis.call('DEL', KEYS[2])
  breaker_event(KEYS[4], ARGV[11], 'CircuitBreakerOpened', ARGV[10], now,
    {failure_rate = rate, calls = calls, open_until = (now + tonumber(ARGV[8])) / 1000.0})
  return {'OPEN', 'OPENED'}
end
if state == 'HALF_OPEN' then
  if ARGV[4] ~= '1' then return {state, ''} end
  if failed then return open(1.0, 1) end
  local ok = redis.call('HINCRBY', KEYS[1], 'half_ok', 1)
  if ok >= tonumber(ARGV[9]) then
    redis.call('HSET', KEYS[1], 'state', 'CLOSED', 'changed', now, 'half_calls', 0, 'half_ok', 0)
    redis.call('DEL', KEYS[2])
    breaker_event(KEYS[4], ARGV[11], 'CircuitBreakerClosed', ARGV[10], now, {trial_calls = ok})
    return {'CLOSED', 'CLOSED'}
  end
  return {state, ''}
end
if state == 'OPEN' then return {state, ''} end
redis.call('LPUSH', KEYS[2], failed and 1 or 0)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
local window = redis.call('LRANGE', KEYS[2], 0, -1)
if #window >= tonumber(ARGV[6]) then
  local fails = 0
  for i = 1, #window do if window[i] == '1' then fails = fails + 1 end end
  local rate = fails / #window
  if rate >= tonumber(ARGV[7]) then return open(rate, #window) end
end
return {'CLOSED', ''}
"""
)

BREAKER_FORCE = (
    _BREAKER_EVENT
    + """
-- KEYS: 1 breaker hash, 2 window list, 3 feed
-- ARGV: 1 mode ('OPEN' | 'CLOSED' | 'RESET'), 2 now ms, 3 service, 4 feed maxlen, 5 by
-- An operator's force: forced states hold until reset; reset clears the window and closes it.
local now = tonumber(ARGV[2])
if ARGV[1] == 'RESET' then
  redis.call('HSET', KEYS[1], 'state', 'CLOSED', 'forced', '', 'changed', now, 'half_calls', 0, 'half_ok', 0)
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[1], 'forced', ARGV[1], 'changed', now)
end
breaker_event(KEYS[3], ARGV[4], 'CircuitBreakerForced', ARGV[3], now, {mode = ARGV[1], by = ARGV[5]})
return 1
"""
)

# ---------------------------------------------------------------------------- waveless order flow
INTAKE_APPEND = """
-- KEYS: 1 intake stream, 2 queue depth counter, 3 waveless state hash
-- ARGV: (order id, order json, arrived at epoch s) per order
-- Appends the orders to the intake and counts them in the queue depth together, so the depth is
-- exactly the orders accepted and not yet acknowledged by the releaser. Returns the entry ids.
local n = #ARGV / 3
if n < 1 or #ARGV % 3 ~= 0 then return redis.error_reply('ERR intake: arguments must be (id, json, arrived) triples') end
for i = 0, n - 1 do
  if ARGV[3 * i + 1] == '' then return redis.error_reply('ERR intake: empty order id') end
  if not tonumber(ARGV[3 * i + 3]) then return redis.error_reply('ERR intake: arrival time is not a number') end
end
local ids = {}
for i = 0, n - 1 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'id', ARGV[3 * i + 1], 'o', ARGV[3 * i + 2], 'at', ARGV[3 * i + 3])
end
redis.call('INCRBY', KEYS[2], n)
redis.call('HINCRBY', KEYS[3], 'accepted_total', n)
return ids
"""

INTAKE_ACK = """
-- KEYS: 1 intake stream, 2 queue depth counter, 3 waveless state hash
-- ARGV: 1 consumer group, 2 state counter ('released_total' | 'rejected_total'), 3 now (epoch s),
--       4.. entry ids
-- Acknowledges released entries, deletes them from the intake and takes them off the queue depth,
-- together. An entry acknowledged before (delivered twice) is not counted twice.
-- Returns {acknowledged now, queue depth after}
if #ARGV < 4 then return {0, tonumber(redis.call('GET', KEYS[2]) or '0')} end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
local depth = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > 0 then
  depth = redis.call('DECRBY', KEYS[2], n)
  if depth < 0 then
    redis.call('SET', KEYS[2], 0)
    depth = 0
  end
  redis.call('HINCRBY', KEYS[3], ARGV[2], n)
  redis.call('HSET', KEYS[3], 'last_release_at', ARGV[3], 'last_release_count', n)
end
return {n, depth}
"""

LEADER = """
-- KEYS: 1 leader lock
-- ARGV: 1 candidate name, 2 ttl ms
-- Takes the lock when free or renews it when held by the candidate.
-- Returns 2 newly taken | 1 renewed | 0 held by another
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
"""

RESIGN = """
-- KEYS: 1 leader lock
-- ARGV: 1 name
-- Gives the lock up, only if still held by this name. Returns 1 if released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
