"""The Lua helper shared by the scripts that make work runnable: wake an idle dispatcher if one is
waiting, otherwise ask the caller to enqueue a dispatch job unless one is already queued."""

from __future__ import annotations

WAKE = """
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
