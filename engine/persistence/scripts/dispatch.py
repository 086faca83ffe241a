"""Dispatch: claim due workflows (then fresh starts), acquire, renew and release their leases, a
dispatcher's exit, the safety-net tick."""

from __future__ import annotations

from engine.persistence.scripts.wake import WAKE

CLAIM = """
-- KEYS: 1 sched, 2 idle, 3 ready
-- ARGV: 1 now ms, 2 lease until ms, 3 max count, 4 dispatcher id, 5 idle until ms
-- Takes what is due in sched first (lowest due time first: timers, retries, wakes, leases of dead
-- workers), then fills the batch from ready (fresh starts, oldest first), so recovered and due sagas
-- never wait behind a backlog of fresh ones. Every claimed id goes to sched scored with the lease
-- expiry, and out of ready. With ARGV[5] > 0 the dispatcher has free capacity: it is registered in idle
-- until then (a start wakes it) whether or not it claimed anything; 0 (at capacity) leaves it out.
-- Returns {n, more, id, due ms, id, due ms...} (due: the score it was due at; a fresh start's creation
-- time); with n = 0: {0, next due ms or ''}.
redis.call('ZREM', KEYS[2], ARGV[4])
if tonumber(ARGV[5]) > 0 then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4]) end
local limit = tonumber(ARGV[3])
local out = {0, 0}
local n = 0
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #due, 2 do
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[i])
    redis.call('ZREM', KEYS[3], due[i])
    out[#out + 1] = due[i]
    out[#out + 1] = due[i + 1]
  end
  n = #due / 2
end
if n < limit then
  local fresh = redis.call('ZPOPMIN', KEYS[3], limit - n)
  for i = 1, #fresh, 2 do
    redis.call('ZADD', KEYS[1], ARGV[2], fresh[i])
    out[#out + 1] = fresh[i]
    out[#out + 1] = fresh[i + 1]
  end
  n = n + #fresh / 2
end
if n == 0 then
  local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #nxt == 0 then nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') end
  return {0, nxt[2] or ''}
end
out[1] = n
if redis.call('ZCARD', KEYS[3]) > 0 or #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1) > 0 then
  out[2] = 1
end
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
-- KEYS: 1 idle, 2 wake, 3 sched, 4 ready
-- ARGV: 1 dispatcher id, 2 now ms
-- A dispatcher may stop only if no wake token is waiting, no fresh start is ready and nothing is due;
-- atomic with CREATE's check of idle dispatchers, so no start is left without a dispatcher.
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('LLEN', KEYS[2]) > 0 then return 1 end
if redis.call('ZCARD', KEYS[4]) > 0 then return 1 end
if #redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, 1) > 0 then return 1 end
return 0
"""

TICK = (
    WAKE
    + """
-- KEYS: 1 sched, 2 idle, 3 wake, 4 queued flag, 5 ready
-- ARGV: 1 now ms, 2 flag ttl ms
-- Safety net: if work is due (or a fresh start is ready), wake a dispatcher or ask for a dispatch job.
if redis.call('ZCARD', KEYS[5]) == 0
  and #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1) == 0 then return 0 end
return wake(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
"""
)
