"""Services' circuit breakers: admit a call and pick its instance, record its outcome, an operator's force."""

from __future__ import annotations

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
