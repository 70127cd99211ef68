#!lua
--[[
  sweepTimeouts-8: claims and handles ONE request of a partition whose requestTimeout may have run
  out. The caller reads the due members of the deadline set (ZRANGEBYSCORE … LIMIT, so the cost
  follows the number due, not the number registered) and calls this script once per id with that
  request's keys. The claim is atomic: the script acts only while the id is still in the set and
  due, so several workers sweeping the same partition handle each request once (the others get
  NOT_DUE).

    gone, terminal, or not taking callbacks (PAUSED, ERROR_AUTO_RETRY, ...) → dropped from the set
    a callback or check-in since (lastCheckInTime / updatedAt) → re-scored to its new due time
    otherwise timed out: isTimedOut=true, timedOutAt, history entry, event REQUEST_TIMED_OUT;
      what the policy does is TIMEOUT_RULES from packages/domain (include 'schedulerRules'):
      'mark' keeps the state (ESS); 'error' ends it in ERROR, errorType TIMEOUT

  KEYS[1] deadline set       <prefix>:{pN}:deadlines
  KEYS[2] request hash       <prefix>:{pN}:req:<id>
  KEYS[3] history            <prefix>:{pN}:req:<id>:hist
  KEYS[4] reorder buffer     <prefix>:{pN}:req:<id>:buf
  KEYS[5] skipped seqs       <prefix>:{pN}:req:<id>:skip
  KEYS[6] event stream       <prefix>:{pN}:events
  KEYS[7] request index      <prefix>:{pN}:ix      (include 'index')
  KEYS[8] index expiry set   <prefix>:{pN}:ix:exp
  ARGV[1] now (ms)
  ARGV[2] request id (the member of the deadline set)
  ARGV[3] policy: 'mark' or 'error'
  ARGV[4] history length cap
  ARGV[5] event stream MAXLEN (approximate)
  ARGV[6] retention of terminal requests (s)

  Returns { code }, code from CODE (codes.ts): TIMED_OUT, RESCHEDULED, DROPPED or NOT_DUE
]]
--@include codes
--@include terminal
--@include schedulerRules
--@include history
--@include event
--@include expireTerminal
--@include index

local deadlines, req, hist, buf, skip, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, rid, policy = tonumber(ARGV[1]), ARGV[2], ARGV[3]

local score = redis.call('ZSCORE', deadlines, rid)
if not score or tonumber(score) > now then return { CODE.NOT_DUE } end

local s = redis.call('HMGET', req, 'state', 'requestTimeout', 'processStartTime', 'lastCheckInTime',
  'updatedAt', 'isTimedOut', 'execution')
local state = s[1]
if not state or not s[2] or not TIMEOUT_STATES[state] or s[6] == 'true' then
  redis.call('ZREM', deadlines, rid)
  return { CODE.DROPPED }
end

local last = math.max(tonumber(s[3] or '0'), tonumber(s[4] or '0'), tonumber(s[5] or '0'))
local deadline = math.floor(last + tonumber(s[2]) * 60000)
if deadline > now then
  redis.call('ZADD', deadlines, deadline, rid)
  return { CODE.RESCHEDULED }
end

redis.call('ZREM', deadlines, rid)
local rule = TIMEOUT_RULES[policy]
local to = rule.to or state
local fields = { 'isTimedOut', 'true', 'timedOutAt', now, 'updatedAt', now }
if rule.to then
  for _, v in ipairs({ 'state', rule.to, 'errorType', rule.errorType, 'cause', rule.cause,
    'errorWarningMessage', string.format(TIMEOUT_MESSAGE, s[2]),
    'errorWarningTime', now }) do
    table.insert(fields, v)
  end
end
if TERMINAL[to] then
  for _, v in ipairs({ 'processEndTime', now, 'completedTime', now }) do table.insert(fields, v) end
end
indexState(KEYS[7], KEYS[8], req, rid, state, to, now, ARGV[6])
redis.call('HSET', req, unpack(fields))
if TERMINAL[to] then expireRequest({ req, hist, buf, skip }, ARGV[6]) end
appendHistory(hist, req, { outcome = 'timedOut', from = state, to = to,
  execution = tonumber(s[7] or '0'), appliedAt = now }, ARGV[4])
local ev = { 'event', rule.event, 'requestId', rid, 'state', to, 'previousState', state,
  'execution', tostring(s[7] or '0'), 'at', tostring(now), 'isTimedOut', 'true' }
if rule.errorType then table.insert(ev, 'errorType'); table.insert(ev, rule.errorType) end
publishEvent(events, ARGV[5], req, ev)
return { CODE.TIMED_OUT }
