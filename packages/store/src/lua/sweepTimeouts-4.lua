#!lua
--[[
  sweepTimeouts-4: claims and handles the requests of one partition whose requestTimeout may have
  run out. Reads only the members that are due (ZRANGEBYSCORE … LIMIT), so the cost follows the
  number due, not the number registered; atomic, so several workers sweeping the same partition
  handle each request once.

  For each due request:
    gone, terminal, or not taking callbacks (PAUSED, ERROR_AUTO_RETRY, ...) → dropped from the set
    a callback or check-in since (lastCheckInTime / updatedAt) → re-scored to its new due time
    otherwise timed out: isTimedOut=true, timedOutAt, history entry, event REQUEST_TIMED_OUT;
      policy 'mark' keeps the state (ESS); policy 'error' ends it in ERROR, errorType TIMEOUT

  KEYS[1] deadline set       <prefix>:{pN}:deadlines
  KEYS[2] event stream       <prefix>:{pN}:events
  KEYS[3] request index      <prefix>:{pN}:ix
  KEYS[4] index expiry set   <prefix>:{pN}:ix:exp
  ARGV[1] now (ms)
  ARGV[2] most requests handled by one call
  ARGV[3] request key prefix <prefix>:{pN}:req:  (+ id = the request hash, + ':hist' its history)
  ARGV[4] policy: 'mark' or 'error'
  ARGV[5] history length cap
  ARGV[6] event stream MAXLEN (approximate)
  ARGV[7] retention of terminal requests (s)

  Also takes expired terminal requests out of the request index (at most ARGV[2] per call).

  Returns { timedOut, rescheduled, dropped, more, pruned } (more = 1 when due members remain)
]]
--@TABLES
--@INDEX

local deadlines, events = KEYS[1], KEYS[2]
local now, limit, reqPrefix, policy = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', 0, limit)
local timedOut, rescheduled, dropped = 0, 0, 0

for _, rid in ipairs(due) do
  local req = reqPrefix .. rid
  local s = redis.call('HMGET', req, 'state', 'requestTimeout', 'processStartTime', 'lastCheckInTime',
    'updatedAt', 'isTimedOut', 'execution')
  local state = s[1]
  if not state or not s[2] or not TRANSITIONS[state] or s[6] == 'true' then
    redis.call('ZREM', deadlines, rid)
    dropped = dropped + 1
  else
    local last = math.max(tonumber(s[3] or '0'), tonumber(s[4] or '0'), tonumber(s[5] or '0'))
    local deadline = math.floor(last + tonumber(s[2]) * 60000)
    if deadline > now then
      redis.call('ZADD', deadlines, deadline, rid)
      rescheduled = rescheduled + 1
    else
      redis.call('ZREM', deadlines, rid)
      local to = state
      local fields = { 'isTimedOut', 'true', 'timedOutAt', now, 'updatedAt', now }
      if policy == 'error' then
        to = 'ERROR'
        for _, v in ipairs({ 'state', 'ERROR', 'errorType', 'TIMEOUT', 'cause', 'PROCESS_ERROR',
          'errorWarningMessage', 'no callback or check-in within requestTimeout (' .. s[2] .. ' min)',
          'errorWarningTime', now, 'processEndTime', now, 'completedTime', now }) do
          table.insert(fields, v)
        end
      end
      indexState(KEYS[3], KEYS[4], req, rid, state, to, now, ARGV[7])
      redis.call('HSET', req, unpack(fields))
      local hist = req .. ':hist'
      if TERMINAL[to] then
        for _, k in ipairs({ req, hist, req .. ':buf', req .. ':skip' }) do
          redis.call('EXPIRE', k, tonumber(ARGV[7]))
        end
      end
      redis.call('LPUSH', hist, cjson.encode({ outcome = 'timedOut', from = state, to = to,
        execution = tonumber(s[7] or '0'), appliedAt = now }))
      redis.call('LTRIM', hist, 0, tonumber(ARGV[5]) - 1)
      local ev = { 'event', 'REQUEST_TIMED_OUT', 'requestId', rid, 'state', to, 'previousState', state,
        'execution', tostring(s[7] or '0'), 'at', tostring(now), 'isTimedOut', 'true' }
      if to == 'ERROR' then table.insert(ev, 'errorType'); table.insert(ev, 'TIMEOUT') end
      table.insert(ev, 'eventSeq'); table.insert(ev, redis.call('HINCRBY', req, 'eventSeq', 1))
      redis.call('XADD', events, 'MAXLEN', '~', ARGV[6], '*', unpack(ev))
      timedOut = timedOut + 1
    end
  end
end
local pruned = indexPrune(KEYS[3], KEYS[4], now, limit)
local more = (#due == limit or pruned == limit) and 1 or 0
return { timedOut, rescheduled, dropped, more, pruned }
