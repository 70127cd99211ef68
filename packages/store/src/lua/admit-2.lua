#!lua
--[[
  admit-2: decides whether the gateway may accept one executionStatus callback, and assigns its
  sequence number. The only script on the gateway's hot path. admit-enqueue-11 and
  admit-enqueue-batch compose it (as the include 'admit', without the lines from `--@standalone` on)
  and call its admit() for each callback.

  KEYS[1] request hash            <prefix>:{pN}:req:<id>
  KEYS[2] idempotency record      <prefix>:{pN}:req:<id>:idem:<key>  (= KEYS[1] when no key is given)

  ARGV[1] sha256 of the request handle (hex)
  ARGV[2] callback status
  ARGV[3] idempotency fingerprint (sha256 of status, handle, message), '' when no Idempotency-Key
  ARGV[4] seconds an idempotency record lives (the Idempotency-Key window)
  ARGV[5] in-flight lease (ms): an admitted call with a key leaves a "pending" record that its gateway
          turns into "done" once the job is in the queue; a repeat finding the lease run out takes the
          call over under the same seq. '0': write no pending record (the caller writes the final
          record in the same script, as admit-enqueue-11 does)

  Idempotency record: "<fingerprint>|<seq>|done"
                   or "<fingerprint>|<seq>|pending|<lease end, ms, Redis time>|<execution>"
  A pending record never expires into a second admission: it lives as long as a done one, and a
  repeat after its lease resumes it (code 3) instead of assigning a new seq.

  Returns { code, seq, execution, cancelling }, code from CODE (codes.ts):
    ADMITTED            seq assigned, the gateway must enqueue it
    RESUMED             a repeat of a call whose gateway did not finish it: enqueue it again
                        under its first seq (the job id is deterministic, so a job that is
                        still there is not added twice, and one already applied is a duplicate)
    REPEAT              repeat of the callback that closed the request, or of an
                        Idempotency-Key already answered 200: answer 200, enqueue nothing
    NOT_FOUND   STALE_HANDLE   NOT_ACCEPTING (state in seq's place)
    IDEMPOTENCY_REUSED   IDEMPOTENCY_IN_FLIGHT
    cancelling  1 when the request is CANCELLING (the job should stop)
]]
--@include codes
--@include callbackStates

-- Defined once per script call: admit-enqueue-batch calls admit() for each callback of its batch.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- the pending record of an admitted call, leased for `lease` ms from now
local function pending(idem, fp, seq, lease, execution, ttl)
  redis.call('SET', idem, fp .. '|' .. seq .. '|pending|' .. (nowMs() + lease) .. '|' .. execution, 'EX', ttl)
end

-- Decides one callback: req, idem = KEYS[1], KEYS[2]; the rest are ARGV[1..5] (lease as given).
local function admit(req, idem, h, status, fp, ttl, lease)
  -- the fields of a closed request (closedHandle, closedStatus) are read only for one: a running
  -- request has neither, and each field an HMGET hands to Lua has its cost
  local r = redis.call('HMGET', req, 'state', 'handle', 'execution')
  local state = r[1]
  if not state then return { CODE.NOT_FOUND, 0, 0, 0 } end
  local cancelling = (state == 'CANCELLING') and 1 or 0
  lease = tonumber(lease)

  if fp ~= '' then
    local rec = redis.call('GET', idem)
    if rec then
      local f = {}
      for part in string.gmatch(rec, '[^|]+') do f[#f + 1] = part end
      if f[1] ~= fp then return { CODE.IDEMPOTENCY_REUSED, 0, 0, cancelling } end
      if f[3] == 'done' then return { CODE.REPEAT, 0, tonumber(r[3]), cancelling } end
      if tonumber(f[4] or '0') > nowMs() then return { CODE.IDEMPOTENCY_IN_FLIGHT, 0, 0, cancelling } end
      -- the gateway that admitted it died (or gave up) before the final record: take it over
      local seq, execution = tonumber(f[2]), tonumber(f[5] or r[3])
      if lease > 0 then pending(idem, fp, seq, lease, execution, ttl) end
      return { CODE.RESUMED, seq, execution, cancelling }
    end
  end

  if CALLBACK_STATES[state] then
    if r[2] ~= h then return { CODE.STALE_HANDLE, 0, 0, 0 } end
    local seq = redis.call('HINCRBY', req, 'seq', 1)
    if fp ~= '' and lease > 0 then pending(idem, fp, seq, lease, r[3], ttl) end
    return { CODE.ADMITTED, seq, tonumber(r[3]), cancelling }
  end
  local closed = redis.call('HMGET', req, 'closedHandle', 'closedStatus')
  if closed[1] == h then
    if closed[2] == status then return { CODE.REPEAT, 0, tonumber(r[3]), 0 } end
    return { CODE.NOT_ACCEPTING, state, 0, 0 }
  end
  if r[2] == h then return { CODE.NOT_ACCEPTING, state, 0, 0 } end
  return { CODE.STALE_HANDLE, 0, 0, 0 }
end
--@standalone
return admit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
