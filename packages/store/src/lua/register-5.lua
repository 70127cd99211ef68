#!lua
--[[
  register-5: creates a request in RUNNING with a fresh handle, or re-arms a non-terminal one
  (retry from ERROR_AUTO_RETRY, resume from PAUSED, operator recovery, re-dispatch). The old
  handle stops working at once: admit-2 compares against the new one. In the same atomic step it
  puts the request in its partition's deadline set (scored by when its requestTimeout runs out), or
  takes it out when it has none, so no crash leaves a registered request that never times out.

  KEYS[1] request hash   KEYS[2] history   KEYS[3] event stream
  KEYS[4] deadline set   (zset: request id scored by due time, ms; read by sweepTimeouts-8)
  KEYS[5] request index  (include 'index')
  ARGV[1] sha256 of the new handle (hex)
  ARGV[2] now (ms)
  ARGV[3] maxRetries ('' keeps the current value; 0 for a new request)
  ARGV[4] requestTimeout in minutes ('' keeps the current value; none for a new request)
  ARGV[5] resumed: '1' or '0'
  ARGV[6] history length cap
  ARGV[7] event stream MAXLEN (approximate)
  ARGV[8] request id
  ARGV[9] metadata JSON: ESS descriptive fields (jobDefinitionId, application, ...) to store, or ''
  ARGV[10] operator JSON { action, actor, reason } of a re-arm from the operator console, or '':
           the request must exist (else NOT_FOUND) in one of OPERATOR_REARM_STATES (else
           UNSUPPORTED_STATE), a PAUSED one is resumed (as with ARGV[5] = '1'), and an 'operator'
           history entry follows the 'registered' one

  Returns { code, execution, state, pausedState }, code from CODE (codes.ts):
    CREATED   REARMED   ALREADY_TERMINAL (state = the terminal state)
    NOT_PAUSED (resumed=true but the request is not RESUMABLE_STATE; state = its state)
    NOT_FOUND (an operator re-arm of a request that is not there)
    UNSUPPORTED_STATE (an operator re-arm of a request not in OPERATOR_REARM_STATES; state = its state)
  The move itself (to, event, cause, the fields a re-arm clears): REGISTER_RULE and REARM_CLEARS from
  packages/domain (include 'schedulerRules').
]]
--@include codes
--@include terminal
--@include schedulerRules
--@include history
--@include event
--@include index

local req, hist, events, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, rid = ARGV[2], ARGV[8]
local s = redis.call('HMGET', req, 'state', 'execution', 'pausedState')
local from = s[1]
local execution = 1
local code = CODE.CREATED
local paused = false
local to = REGISTER_RULE.to
local operator = (ARGV[10] and ARGV[10] ~= '') and cjson.decode(ARGV[10]) or nil
local resumed = ARGV[5] == '1'
if operator then
  if not from then return { CODE.NOT_FOUND, 0, '', false } end
  -- an operator re-arms only a request that waits for one; a PAUSED one is resumed
  if not OPERATOR_REARM_STATES[from] then return { CODE.UNSUPPORTED_STATE, from, from, false } end
  resumed = from == RESUMABLE_STATE
end

if from then
  if TERMINAL[from] then return { CODE.ALREADY_TERMINAL, 0, from, false } end
  if resumed and from ~= RESUMABLE_STATE then return { CODE.NOT_PAUSED, 0, from, false } end
  execution = tonumber(s[2]) + 1
  code = CODE.REARMED
  if resumed then paused = s[3] or '' end
  redis.call('HDEL', req, unpack(REARM_CLEARS))
else
  redis.call('HSET', req, 'seq', 0, 'applied', 0, 'retriedCount', 0, 'maxRetries', 0,
    'registeredAt', now)
end

if ARGV[9] ~= '' then
  local meta = cjson.decode(ARGV[9])
  if meta.jobDefinitionId then indexJob(KEYS[5], req, rid, meta.jobDefinitionId) end
  for k, v in pairs(meta) do redis.call('HSET', req, k, v) end
end
indexState(KEYS[5], nil, req, rid, from, to, now, 0)
redis.call('HSET', req, 'state', to, 'handle', ARGV[1], 'execution', execution,
  'processStartTime', now, 'updatedAt', now, 'cause', REGISTER_RULE.cause)
if ARGV[3] ~= '' then redis.call('HSET', req, 'maxRetries', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', req, 'requestTimeout', ARGV[4]) end

local entry = { outcome = 'registered', execution = execution, to = to, appliedAt = tonumber(now) }
if from then entry.from = from end
if resumed then entry.reason = 'resumed' end
appendHistory(hist, req, entry, ARGV[6])
if operator then
  appendHistory(hist, req, { outcome = 'operator', action = operator.action, actor = operator.actor,
    reason = operator.reason, from = from, to = to, execution = execution, appliedAt = tonumber(now) }, ARGV[6])
end
local ev = { 'event', REGISTER_RULE.event, 'requestId', rid, 'state', to, 'execution',
  tostring(execution), 'at', now }
if from then table.insert(ev, 'previousState'); table.insert(ev, from) end
publishEvent(events, ARGV[7], req, ev)

-- the timeout sweep looks only at requests in the deadline set
local timeout = redis.call('HGET', req, 'requestTimeout')
if timeout then
  redis.call('ZADD', deadlines, math.floor(tonumber(now) + tonumber(timeout) * 60000), rid)
else
  redis.call('ZREM', deadlines, rid)
end
return { code, execution, to, paused }
