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

  Returns { code, state, n }
    code  1 CANCELLED (state = the state it left)   2 CANCELLING (state = the state it left)
         -1 NOT_FOUND   -2 UNSUPPORTED_STATE (state = current state)
         -3 TOO_EARLY (n = ms until forceCancel is allowed)
]]
--@TABLES
--@INDEX

local req, buf, hist, events, skip = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, now = ARGV[1], tonumber(ARGV[2])
local rid = ARGV[7]
local s = redis.call('HMGET', req, 'state', 'execution', 'cancellingSince', 'lastCheckInTime')
local from = s[1]
if not from then return { -1, '', 0 } end

local AT_ONCE = { WAIT = true, READY = true, BLOCKED = true, HOLD = true }
local TO_CANCELLING = { RUNNING = true, COMPLETED = true }

local to
if op == 'force' then
  if from ~= 'CANCELLING' then return { -2, from, 0 } end
  local since = math.max(tonumber(s[3] or '0'), tonumber(s[4] or '0'))
  local wait = since + tonumber(ARGV[6]) - now
  if wait > 0 then return { -3, from, wait } end
  to = 'CANCELLED'
elseif AT_ONCE[from] then
  to = 'CANCELLED'
elseif TO_CANCELLING[from] then
  to = 'CANCELLING'
else
  return { -2, from, 0 }
end

local fields = { 'state', to, 'updatedAt', now, 'cause', 'SCHEDULER_CANCEL' }
if to == 'CANCELLING' then
  table.insert(fields, 'cancellingSince'); table.insert(fields, now)
else
  table.insert(fields, 'processEndTime'); table.insert(fields, now)
  table.insert(fields, 'completedTime'); table.insert(fields, now)
end
indexState(KEYS[6], KEYS[7], req, rid, from, to, now, ARGV[5])
redis.call('HSET', req, unpack(fields))
if TERMINAL[to] then
  for _, k in ipairs({ req, buf, hist, skip }) do redis.call('EXPIRE', k, tonumber(ARGV[5])) end
end

local entry = { outcome = (op == 'force') and 'forceCancelled' or 'cancelRequested', from = from, to = to,
  execution = tonumber(s[2] or '0'), appliedAt = now }
redis.call('LPUSH', hist, cjson.encode(entry))
redis.call('LTRIM', hist, 0, tonumber(ARGV[3]) - 1)
local ev = { 'event', (to == 'CANCELLING') and 'REQUEST_CANCELLING' or 'REQUEST_CANCELLED', 'requestId', rid,
  'state', to, 'previousState', from, 'execution', tostring(s[2] or '0'), 'at', tostring(now),
  'cause', 'SCHEDULER_CANCEL' }
table.insert(ev, 'eventSeq'); table.insert(ev, redis.call('HINCRBY', req, 'eventSeq', 1))
redis.call('XADD', events, 'MAXLEN', '~', ARGV[4], '*', unpack(ev))
return { (to == 'CANCELLING') and 2 or 1, from, 0 }
