"""The waveless order flow: the durable intake and the releaser's leader lock."""

from __future__ import annotations

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
