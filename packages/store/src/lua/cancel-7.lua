#!lua
--[[
  cancel-7: the scheduler's cancel and forceCancel (ess-semantics §4), atomic with the history
  entry and the event.
    cancel:  WAIT/READY/BLOCKED/HOLD → CANCELLED at once; RUNNING/COMPLETED → CANCELLING (the job
             learns it from X-ESS-Cancel-Requested and checkInCancelling, then reports)
    force:   CANCELLING → CANCELLED without the job, once it has been quiet for the quiet period
             (since CANCELLING began or since its last check-in, whichever is later)

  KEYS[1] request hash   KEYS[2] reorder buffer   KEYS[3] history   KEYS[4] event stream
  KEYS[5] skipped seqs   KEYS[6] request index   KEYS[7] index expiry set

  ARGV[1] operation: 'cancel' or 'force'
  ARGV[2] now (ms)
  ARGV[3] history length cap
  ARGV[4] event stream MAXLEN (approximate)
  ARGV[5] retention of terminal requests (s)
  ARGV[6] force: quiet period (ms)
  ARGV[7] request id
  ARGV[8] operator JSON { action, actor, reason } of an action from the operator console, or '':
          an 'operator' history entry follows the cancel's own

  Returns { code, state, n }, code from CODE (codes.ts):
    CANCELLED (state = the state it left)   CANCELLING (state = the state it left)
    NOT_FOUND   UNSUPPORTED_STATE (state = current state)   TOO_EARLY (n = ms until forceCancel is allowed)
  Which states take which operation, and where they go: CANCEL_RULES and FORCE_CANCEL_RULES from
  packages/domain (include 'schedulerRules').
]]
--@include codes
--@include terminal
--@include schedulerRules
--@include history
--@include event
--@include expireTerminal
--@include index

local req, buf, hist, events, skip = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, now = ARGV[1], tonumber(ARGV[2])
local rid = ARGV[7]
local s = redis.call('HMGET', req, 'state', 'execution', 'cancellingSince', 'lastCheckInTime')
local from = s[1]
if not from then return { CODE.NOT_FOUND, '', 0 } end

local rule = ((op == 'force') and FORCE_CANCEL_RULES or CANCEL_RULES)[from]
if not rule then return { CODE.UNSUPPORTED_STATE, from, 0 } end
if op == 'force' then
  local since = math.max(tonumber(s[3] or '0'), tonumber(s[4] or '0'))
  local wait = since + tonumber(ARGV[6]) - now
  if wait > 0 then return { CODE.TOO_EARLY, from, wait } end
end
local to = rule.to

local fields = { 'state', to, 'updatedAt', now, 'cause', rule.cause }
if to == 'CANCELLING' then
  table.insert(fields, 'cancellingSince'); table.insert(fields, now)
end
if TERMINAL[to] then
  table.insert(fields, 'processEndTime'); table.insert(fields, now)
  table.insert(fields, 'completedTime'); table.insert(fields, now)
end
indexState(KEYS[6], KEYS[7], req, rid, from, to, now, ARGV[5])
redis.call('HSET', req, unpack(fields))
if TERMINAL[to] then expireRequest({ req, buf, hist, skip }, ARGV[5]) end

appendHistory(hist, req, { outcome = (op == 'force') and 'forceCancelled' or 'cancelRequested', from = from, to = to,
  execution = tonumber(s[2] or '0'), appliedAt = now }, ARGV[3])
if ARGV[8] and ARGV[8] ~= '' then
  local o = cjson.decode(ARGV[8])
  appendHistory(hist, req, { outcome = 'operator', action = o.action, actor = o.actor, reason = o.reason,
    from = from, to = to, execution = tonumber(s[2] or '0'), appliedAt = now }, ARGV[3])
end
publishEvent(events, ARGV[4], req, { 'event', rule.event, 'requestId', rid,
  'state', to, 'previousState', from, 'execution', tostring(s[2] or '0'), 'at', tostring(now),
  'cause', rule.cause })
return { (to == 'CANCELLING') and CODE.CANCELLING or CODE.CANCELLED, from, 0 }
