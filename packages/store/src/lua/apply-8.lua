#!lua
--[[
  apply-8: applies accepted callbacks to one request, in sequence order, exactly once in effect.
  The worker's only script per job; apply-batch composes it (as the include 'apply') once per
  callback of a batch job. The transition table is not written here: the loader replaces
  the include 'transitions' with the table serialised from packages/domain (one source of truth).

  KEYS[1] request hash        <prefix>:{pN}:req:<id>
  KEYS[2] reorder buffer      <prefix>:{pN}:req:<id>:buf      zset: callback JSON scored by seq
  KEYS[3] history             <prefix>:{pN}:req:<id>:hist     list, newest first, capped
  KEYS[4] event stream        <prefix>:{pN}:events
  KEYS[5] skipped seqs        <prefix>:{pN}:req:<id>:skip     set of seqs skipped over as gaps
  KEYS[6] request index       <prefix>:{pN}:ix                (include 'index')
  KEYS[7] index expiry set    <prefix>:{pN}:ix:exp
  KEYS[8] in-flight markers   <prefix>:{pN}:inflight          hash "<id>-<seq>" → batch job id: the
          callbacks queued inside batch jobs (which have no job hash of their own), see apply-batch
  KEYS[9..] gap: the BullMQ job hashes of the gap's seqs, ARGV[8] up to the first buffered seq - 1,
          as the caller read the gap just before (<prefix>:{pN}:callbacks:<id>-<seq>); none for 'cb'

  ARGV[1] mode: 'cb' (apply a callback) or 'gap' (skip an expired gap)
  ARGV[2] cb: the callback job JSON {v,requestId,seq,execution,status,message?,acceptedAt}
          gap: the missing seq the check was scheduled for
  ARGV[3] now (ms)
  ARGV[4] history length cap
  ARGV[5] event stream MAXLEN (approximate)
  ARGV[6] retention of terminal requests (s)
  ARGV[7] gap timeout (ms)
  ARGV[8] gap: the first seq of the gap KEYS[9..] cover (applied + 1 when the caller read it); cb: 0
  ARGV[9] request id

  Returns { result, missing, n, held }
    result  'applied' | 'late' | 'ignored' | 'duplicate' | 'buffered' | 'skipped' | 'wait' | 'closed' | 'gone'
    missing the lowest missing seq while later callbacks wait in the buffer, else 0
    n       callbacks taken out of the buffer and applied/ignored by this call ('wait': ms to wait)
    held    mode 'cb': 1 when the missing seq is queued inside a batch job (its in-flight marker is
            there), else 0. No gap check is needed for it then: its batch applies it (and reports what
            is missing after it), or the seq's dead letter is written, and the worker schedules the gap
            check before writing it. Batch jobs in different queues run in any order, so a request's
            later seq often arrives first; this spares a gap-check job for each such arrival.
]]
--@include transitions
--@include terminal
--@include callbackStates
--@include history
--@include event
--@include expireTerminal
--@include index
--@include jobId

-- The call in progress: run() sets these for each callback; the functions below are defined once per
-- script call (apply-batch runs many callbacks through them), not once per callback.
local K, A, req, buf, hist, events, skip, now, nowText, histCap, maxlen, retention, gapTimeout, rid

-- The request hash's fields this script reads: BASE in one HMGET at the start, MORE in a second one
-- only when a callback moves the state, retries or publishes an event (most callbacks, UPDATEs, do
-- not; each field an HMGET hands to Lua costs about a quarter of a microsecond). H holds them as the
-- script changed them. Writes go to H and are collected (W, D), and reach the hash at the end in one
-- HDEL and one HSET.
local BASE = { 'state', 'execution', 'applied', 'gapSince', H_HEAD_FIELD } -- run() takes them in this order
local MORE = { 'retriedCount', 'maxRetries', 'handle', 'stateChangeTime', 'registeredAt', 'jobDefinitionId', 'eventSeq' }
local H, W, D, haveMore
local function put(f, v) H[f] = v; W[f] = v; D[f] = nil end
local function drop(f) H[f] = nil; W[f] = nil; D[f] = true end
local function readMore()
  if haveMore then return end
  haveMore = true
  local got = redis.call('HMGET', req, unpack(MORE))
  for i = 1, #MORE do
    local f = MORE[i]
    if got[i] and W[f] == nil and not D[f] then H[f] = got[i] end
  end
end
local function flush()
  local del, set = {}, {}
  for f in pairs(D) do del[#del + 1] = f end
  for f, v in pairs(W) do set[#set + 1] = f; set[#set + 1] = v end
  if #del > 0 then redis.call('HDEL', req, unpack(del)) end
  if #set > 0 then redis.call('HSET', req, unpack(set)) end
end

-- the last applied seq, and whether the reorder buffer holds callbacks as last seen (nil: not looked at yet)
local applied, buffered

local function record(entry)
  put(H_HEAD_FIELD, pushHistory(hist, entry, histCap, H[H_HEAD_FIELD]))
end

-- One callback through the state machine; returns 'applied', 'late' or 'ignored'.
local function applyOne(cb, late)
  local from = H.state
  local entry = {
    seq = cb.seq, status = cb.status, execution = cb.execution, from = from,
    acceptedAt = cb.acceptedAt, appliedAt = now, message = cb.message,
  }
  local column = CALLBACK_STATES[from] and TRANSITIONS[from]
  if tonumber(cb.execution) ~= tonumber(H.execution) then
    entry.outcome = 'ignored'
    entry.reason = 'stale execution ' .. cb.execution .. ' (current ' .. H.execution .. ')'
  elseif not column then
    entry.outcome = 'ignored'
    entry.reason = 'request is ' .. from
  else
    local rule = column[cb.status]
    if rule.retry or rule.event or rule.to ~= from then readMore() end
    local retried, maxRetries = tonumber(H.retriedCount or '0'), tonumber(H.maxRetries or '0')
    if rule.retry and retried < maxRetries then
      rule = rule.retry
      put('retriedCount', retried + 1)
    end
    local to = rule.to
    put('state', to)
    put('updatedAt', nowText)
    if rule.cause then put('cause', rule.cause) end
    if rule.errorType then put('errorType', rule.errorType) end
    if rule.message then
      if cb.message then put(rule.message, cb.message) else drop(rule.message) end
      if rule.message == 'errorWarningMessage' then put('errorWarningTime', nowText) end
    end
    if rule.checkIn then put('lastCheckInTime', nowText) end
    if TERMINAL[to] then
      put('processEndTime', nowText)
      put('completedTime', nowText)
    end
    if not CALLBACK_STATES[to] and H.handle then
      -- leaving the states that take callbacks retires the handle; a repeat of this very
      -- callback is still answered 200 (admit-2) until the next registration
      put('closedHandle', H.handle)
      put('closedStatus', cb.status)
      drop('handle')
    end
    if indexMove(K[6], K[7], rid, from, to, now, retention,
        { H.stateChangeTime, H.registeredAt, H.jobDefinitionId }) then
      put('stateChangeTime', nowText)
    end
    if TERMINAL[to] then
      expireRequest({ req, buf, hist, skip }, retention)
    end
    entry.to = to
    entry.outcome = late and 'late' or 'applied'
    if rule.event then
      local ev = { 'event', rule.event, 'requestId', rid, 'state', to, 'previousState', from,
        'seq', tostring(cb.seq), 'execution', tostring(cb.execution), 'at', nowText }
      if rule.errorType then table.insert(ev, 'errorType'); table.insert(ev, rule.errorType) end
      if rule.cause then table.insert(ev, 'cause'); table.insert(ev, rule.cause) end
      local eventSeq = tonumber(H.eventSeq or '0') + 1
      put('eventSeq', eventSeq)
      addEvent(events, maxlen, ev, eventSeq)
    end
  end
  record(entry)
  return entry.outcome
end

-- A buffer or skip set written after the request turned terminal (callbacks admitted before the close
-- can still arrive) expires with the request's hash, which carries the retention TTL from then on.
local function expireWithRequest(key)
  local ttl = redis.call('PTTL', req)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

-- The reorder buffer is empty while the hash has no gapSince: the field is set when the buffer takes its
-- first callback and dropped only when the buffer is found empty (missing). So the buffer is read only
-- for a request that has one, not after every callback applied in order.

-- Applies every buffered callback that is now next in line; returns how many.
local function drain()
  local n = 0
  if not H.gapSince then
    buffered = false
    return 0
  end
  while true do
    local head = redis.call('ZRANGE', buf, 0, 0, 'WITHSCORES')
    buffered = #head > 0
    if not buffered then break end
    local seq = tonumber(head[2])
    if seq > applied + 1 then break end
    redis.call('ZREM', buf, head[1])
    if seq == applied + 1 then
      applied = seq
      put('applied', applied)
      applyOne(cjson.decode(head[1]), false)
      n = n + 1
    end
  end
  return n
end

-- The lowest missing seq while the buffer holds later ones (else 0); keeps gapSince in step.
local function missing()
  if buffered == nil then buffered = H.gapSince ~= nil and redis.call('ZCARD', buf) > 0 end
  if not buffered then
    if H.gapSince then drop('gapSince') end
    return 0
  end
  return applied + 1
end

local function gap()
  local want = tonumber(A[2])
  local head = redis.call('ZRANGE', buf, 0, 0, 'WITHSCORES')
  buffered = #head > 0
  if want <= applied or not buffered then return { 'closed', missing(), 0 } end
  local since = tonumber(H.gapSince or now)
  if now - since < gapTimeout then return { 'wait', applied + 1, since + gapTimeout - now } end
  local first = tonumber(head[2])
  -- the gap moved since the caller read it (its job keys are not those of this gap): decide nothing,
  -- the check runs again at once with the gap as it is now
  if tonumber(A[8]) ~= applied + 1 or #K - 8 ~= first - 1 - applied then return { 'wait', applied + 1, 0 } end
  -- a missing callback whose job still exists is being (re)tried: never skip it; one queued inside a
  -- batch job has an in-flight marker instead, until its batch applies it or dead-letters it
  for i = 9, #K do
    if redis.call('EXISTS', K[i]) == 1 then return { 'wait', applied + 1, gapTimeout } end
  end
  for seq = applied + 1, first - 1 do
    if redis.call('HEXISTS', K[8], callbackJobId(rid, seq)) == 1 then return { 'wait', applied + 1, gapTimeout } end
  end
  for seq = applied + 1, first - 1 do redis.call('SADD', skip, seq) end
  expireWithRequest(skip)
  record({ outcome = 'skipped', seq = applied + 1, lastSeq = first - 1, appliedAt = now,
    reason = 'gap open ' .. (now - since) .. ' ms' })
  applied = first - 1
  put('applied', applied)
  local n = drain()
  return { 'skipped', missing(), n }
end

-- mode 'cb''s reply: { result, missing, n, held }
local function reply(result, miss, n)
  local held = 0
  if miss > 0 and redis.call('HEXISTS', K[8], callbackJobId(rid, miss)) == 1 then held = 1 end
  return { result, miss, n, held }
end

local function callback()
  -- apply-batch passes the job it decoded already as ARGV.job
  local cb = A.job or cjson.decode(A[2])
  local seq = tonumber(cb.seq)
  if seq <= applied then
    -- a callback skipped over as a gap arrives late: it goes through the state machine now
    if redis.call('SREM', skip, seq) == 1 then
      return reply(applyOne(cb, true) == 'ignored' and 'ignored' or 'late', missing(), 0)
    end
    return reply('duplicate', missing(), 0)
  end
  if seq > applied + 1 then
    if not H.gapSince or redis.call('ZCARD', buf) == 0 then put('gapSince', nowText) end
    redis.call('ZADD', buf, 'NX', seq, A[2])
    expireWithRequest(buf)
    return reply('buffered', applied + 1, 0)
  end
  applied = seq
  put('applied', applied)
  local result = applyOne(cb, false)
  local n = drain()
  return reply(result, missing(), n)
end

-- Applies one callback or gap check (KEYS, ARGV as described above); returns the reply.
local function run(KEYS, ARGV)
  K, A = KEYS, ARGV
  req, buf, hist, events, skip = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  nowText = ARGV[3]
  now = tonumber(nowText)
  histCap, maxlen, retention = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
  gapTimeout, rid = tonumber(ARGV[7]), ARGV[9]
  local got = redis.call('HMGET', req, unpack(BASE))
  if not got[1] then return { 'gone', 0, 0 } end
  -- BASE's fields, in its order, by a constructor: the table is made at its size at once (filled
  -- field by field it grows, and is rehashed, three times)
  H = { state = got[1], execution = got[2], applied = got[3], gapSince = got[4], [H_HEAD_FIELD] = got[5] }
  W, D, haveMore = {}, {}, false
  applied, buffered = tonumber(H.applied or '0'), nil
  local out
  if ARGV[1] == 'gap' then out = gap() else out = callback() end
  flush()
  return out
end
--@standalone
return run(KEYS, ARGV)
