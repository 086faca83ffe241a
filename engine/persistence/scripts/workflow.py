"""One workflow's state: create it, commit a batch of its events, read it atomically."""

from __future__ import annotations

from engine.persistence.scripts.wake import WAKE

CREATE = (
    WAKE
    + """
-- KEYS: 1 state, 2 events, 3 feed, 4 ready, 5 idx status, 6 idx all, 7 idx def, 8 idx corr,
--       9 idempotency key, 10 idle, 11 wake, 12 queued flag
-- ARGV: 1 wid, 2 snapshot, 3 event json, 4 event type, 5 created ms, 6 now ms, 7 feed maxlen,
--       8 use idempotency (0/1), 9 idempotency ttl s, 10 workflow type, 11 correlation id,
--       12 flag ttl ms, 13 version, 14 schedule (0/1)
-- Returns {1, wid, enqueue} created; {0, existing wid, 0} idempotent repeat; {-1, wid, 0} id taken
-- A scheduled start joins ready (fresh starts, oldest first), which CLAIM serves after what is due.
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
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
  enqueue = wake(KEYS[10], KEYS[11], KEYS[12], ARGV[6], ARGV[12])
end
return {1, ARGV[1], enqueue}
"""
)

COMMIT = (
    WAKE
    + """
-- KEYS: 1 state, 2 events, 3 feed, 4 sched, 5 idx old status, 6 idx new status, 7 idx attention,
--       8 idle, 9 wake, 10 queued flag, 11 ready, 12.. semantic lock keys
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
  for i = 12, #KEYS do
    local holder = redis.call('GET', KEYS[i])
    if holder and holder ~= ARGV[1] then return {-4, holder, KEYS[i]} end
  end
  for i = 12, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
elseif ARGV[14] == 'release' then
  for i = 12, #KEYS do
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
  redis.call('ZREM', KEYS[11], ARGV[1])
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
