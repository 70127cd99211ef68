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

local req, buf, hist, events, skip = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, now = ARGV[1], tonumber(ARGV[3])
local histCap, maxlen, retention = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local gapTimeout, rid = tonumber(ARGV[7]), ARGV[9]

if redis.call('EXISTS', req) == 0 then return { 'gone', 0, 0 } end

local function record(entry)
  appendHistory(hist, entry, histCap)
end

-- One callback through the state machine; returns 'applied', 'late' or 'ignored'.
local function applyOne(cb, late)
  local s = redis.call('HMGET', req, 'state', 'execution', 'retriedCount', 'maxRetries', 'handle')
  local from = s[1]
  local entry = {
    seq = cb.seq, status = cb.status, execution = cb.execution, from = from,
    acceptedAt = cb.acceptedAt, appliedAt = now, message = cb.message,
  }
  local column = CALLBACK_STATES[from] and TRANSITIONS[from]
  if tonumber(cb.execution) ~= tonumber(s[2]) then
    entry.outcome = 'ignored'
    entry.reason = 'stale execution ' .. cb.execution .. ' (current ' .. s[2] .. ')'
  elseif not column then
    entry.outcome = 'ignored'
    entry.reason = 'request is ' .. from
  else
    local rule = column[cb.status]
    local retried, maxRetries = tonumber(s[3] or '0'), tonumber(s[4] or '0')
    local fields = { 'state', rule.to, 'updatedAt', now }
    if rule.retry and retried < maxRetries then
      rule = rule.retry
      fields[2] = rule.to
      table.insert(fields, 'retriedCount'); table.insert(fields, retried + 1)
    end
    if rule.cause then table.insert(fields, 'cause'); table.insert(fields, rule.cause) end
    if rule.errorType then table.insert(fields, 'errorType'); table.insert(fields, rule.errorType) end
    if rule.message then
      if cb.message then
        table.insert(fields, rule.message); table.insert(fields, cb.message)
      else
        redis.call('HDEL', req, rule.message)
      end
      if rule.message == 'errorWarningMessage' then
        table.insert(fields, 'errorWarningTime'); table.insert(fields, now)
      end
    end
    if rule.checkIn then table.insert(fields, 'lastCheckInTime'); table.insert(fields, now) end
    if TERMINAL[rule.to] then
      table.insert(fields, 'processEndTime'); table.insert(fields, now)
      table.insert(fields, 'completedTime'); table.insert(fields, now)
    end
    if not CALLBACK_STATES[rule.to] and s[5] then
      -- leaving the states that take callbacks retires the handle; a repeat of this very
      -- callback is still answered 200 (admit-2) until the next registration
      table.insert(fields, 'closedHandle'); table.insert(fields, s[5])
      table.insert(fields, 'closedStatus'); table.insert(fields, cb.status)
      redis.call('HDEL', req, 'handle')
    end
    indexState(KEYS[6], KEYS[7], req, rid, from, fields[2], now, retention)
    redis.call('HSET', req, unpack(fields))
    if TERMINAL[rule.to] then
      expireRequest({ req, buf, hist, skip }, retention)
    end
    entry.to = rule.to
    entry.outcome = late and 'late' or 'applied'
    if rule.event then
      local ev = { 'event', rule.event, 'requestId', rid, 'state', rule.to, 'previousState', from,
        'seq', tostring(cb.seq), 'execution', tostring(cb.execution), 'at', tostring(now) }
      if rule.errorType then table.insert(ev, 'errorType'); table.insert(ev, rule.errorType) end
      if rule.cause then table.insert(ev, 'cause'); table.insert(ev, rule.cause) end
      publishEvent(events, maxlen, req, ev)
    end
  end
  record(entry)
  return entry.outcome
end

-- Applies every buffered callback that is now next in line; returns how many.
local function drain()
  local n = 0
  local applied = tonumber(redis.call('HGET', req, 'applied') or '0')
  while true do
    local head = redis.call('ZRANGE', buf, 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local seq = tonumber(head[2])
    if seq > applied + 1 then break end
    redis.call('ZREM', buf, head[1])
    if seq == applied + 1 then
      applied = seq
      redis.call('HSET', req, 'applied', applied)
      applyOne(cjson.decode(head[1]), false)
      n = n + 1
    end
  end
  return n
end

-- The lowest missing seq while the buffer holds later ones (else 0); keeps gapSince in step.
local function missing()
  if redis.call('ZCARD', buf) == 0 then
    redis.call('HDEL', req, 'gapSince')
    return 0
  end
  return tonumber(redis.call('HGET', req, 'applied') or '0') + 1
end

local applied = tonumber(redis.call('HGET', req, 'applied') or '0')

if mode == 'gap' then
  local want = tonumber(ARGV[2])
  local head = redis.call('ZRANGE', buf, 0, 0, 'WITHSCORES')
  if want <= applied or #head == 0 then return { 'closed', missing(), 0 } end
  local since = tonumber(redis.call('HGET', req, 'gapSince') or now)
  if now - since < gapTimeout then return { 'wait', applied + 1, since + gapTimeout - now } end
  local first = tonumber(head[2])
  -- the gap moved since the caller read it (its job keys are not those of this gap): decide nothing,
  -- the check runs again at once with the gap as it is now
  if tonumber(ARGV[8]) ~= applied + 1 or #KEYS - 8 ~= first - 1 - applied then return { 'wait', applied + 1, 0 } end
  -- a missing callback whose job still exists is being (re)tried: never skip it; one queued inside a
  -- batch job has an in-flight marker instead, until its batch applies it or dead-letters it
  for i = 9, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then return { 'wait', applied + 1, gapTimeout } end
  end
  for seq = applied + 1, first - 1 do
    if redis.call('HEXISTS', KEYS[8], callbackJobId(rid, seq)) == 1 then return { 'wait', applied + 1, gapTimeout } end
  end
  for seq = applied + 1, first - 1 do redis.call('SADD', skip, seq) end
  record({ outcome = 'skipped', seq = applied + 1, lastSeq = first - 1, appliedAt = now,
    reason = 'gap open ' .. (now - since) .. ' ms' })
  redis.call('HSET', req, 'applied', first - 1)
  local n = drain()
  return { 'skipped', missing(), n }
end

-- mode 'cb''s reply: { result, missing, n, held }
local function reply(result, miss, n)
  local held = 0
  if miss > 0 and redis.call('HEXISTS', KEYS[8], callbackJobId(rid, miss)) == 1 then held = 1 end
  return { result, miss, n, held }
end

local cb = cjson.decode(ARGV[2])
local seq = tonumber(cb.seq)
if seq <= applied then
  -- a callback skipped over as a gap arrives late: it goes through the state machine now
  if redis.call('SREM', skip, seq) == 1 then
    return reply(applyOne(cb, true) == 'ignored' and 'ignored' or 'late', missing(), 0)
  end
  return reply('duplicate', missing(), 0)
end
if seq > applied + 1 then
  if redis.call('ZCARD', buf) == 0 then redis.call('HSET', req, 'gapSince', now) end
  redis.call('ZADD', buf, 'NX', seq, ARGV[2])
  return reply('buffered', applied + 1, 0)
end
redis.call('HSET', req, 'applied', seq)
local result = applyOne(cb, false)
local n = drain()
return reply(result, missing(), n)
