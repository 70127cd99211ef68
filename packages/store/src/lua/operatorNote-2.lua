#!lua
--[[
  operatorNote-2: records an operator console action that changes no state (a replay of the
  request's dead letters) in the request's history, with the actor and the reason.

  KEYS[1] request hash   KEYS[2] history
  ARGV[1] now (ms)
  ARGV[2] history length cap
  ARGV[3] operator JSON { action, actor, reason }

  Returns { code, state }, code from CODE (codes.ts): CREATED (the entry was added; state = the
  request's state)   NOT_FOUND (no such request: nothing written)
]]
--@include codes
--@include history

local s = redis.call('HMGET', KEYS[1], 'state', 'execution')
if not s[1] then return { CODE.NOT_FOUND, '' } end
local o = cjson.decode(ARGV[3])
appendHistory(KEYS[2], KEYS[1], { outcome = 'operator', action = o.action, actor = o.actor, reason = o.reason,
  from = s[1], to = s[1], execution = tonumber(s[2] or '0'), appliedAt = tonumber(ARGV[1]) }, ARGV[2])
return { CODE.CREATED, s[1] }
