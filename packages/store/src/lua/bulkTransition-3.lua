#!lua
--[[
  bulkTransition-3: moves a console bulk action from one state to another, atomically: a
  confirmation racing an abort (or a second confirmation) finds the state changed and does nothing.
  On the move to 'running' it also puts the confirmation's id snapshot in place.

  KEYS[1] the bulk action's hash   KEYS[2] a staged id snapshot (list) or a key that does not exist
  KEYS[3] the action's id snapshot (list)
  ARGV[1] the states it may move from, comma-separated
  ARGV[2] TTL of the snapshot (s)
  ARGV[3..] field, value pairs to set (the new state among them)

  Returns { code, state }, code from CODE (codes.ts): CREATED (moved; state = the state it left)
  UNSUPPORTED_STATE (not in one of the states: nothing changed, the staged snapshot dropped; state =
  its state)   NOT_FOUND (no such action)
]]
--@include codes

local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('DEL', KEYS[2])
  return { CODE.NOT_FOUND, '' }
end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then
  redis.call('DEL', KEYS[2])
  return { CODE.UNSUPPORTED_STATE, state }
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[3])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return { CODE.CREATED, state }
