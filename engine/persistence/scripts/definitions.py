"""Saving a workflow definition version."""

from __future__ import annotations

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
