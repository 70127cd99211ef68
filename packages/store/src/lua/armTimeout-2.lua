#!lua
--[[
  armTimeout-2: after a registration, puts the request in its partition's deadline set (scored by
  when its requestTimeout runs out), or takes it out when it has no requestTimeout. Kept apart from
  register-3 so the sweep's bookkeeping stays out of the registration script.

  KEYS[1] request hash   KEYS[2] deadline set (zset: request id scored by due time, ms)
  ARGV[1] request id

  Returns the due time (ms), or 0 when the request has no requestTimeout.
]]
local r = redis.call('HMGET', KEYS[1], 'requestTimeout', 'processStartTime')
if not r[1] or not r[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local due = math.floor(tonumber(r[2]) + tonumber(r[1]) * 60000)
redis.call('ZADD', KEYS[2], due, ARGV[1])
return due
