#!lua
--[[
  admit-2: decides whether the gateway may accept one executionStatus callback, and assigns its
  sequence number. The only script on the gateway's hot path.

  KEYS[1] request hash            <prefix>:{pN}:req:<id>
  KEYS[2] idempotency record      <prefix>:{pN}:req:<id>:idem:<key>  (= KEYS[1] when no key is given)

  ARGV[1] sha256 of the request handle (hex)
  ARGV[2] callback status
  ARGV[3] idempotency fingerprint (sha256 of status, handle, message), '' when no Idempotency-Key
  ARGV[4] seconds an in-flight idempotency record lives (until the gateway marks it done)

  Returns { code, seq, execution, cancelling }
    code  1 ADMITTED            seq assigned, the gateway must enqueue it
          2 REPEAT              repeat of the callback that closed the request, or of an
                                Idempotency-Key already answered 200: answer 200, enqueue nothing
         -1 NOT_FOUND           -2 STALE_HANDLE     -3 NOT_ACCEPTING (state in seq's place)
         -4 IDEMPOTENCY_REUSED  -5 IDEMPOTENCY_IN_FLIGHT
    cancelling  1 when the request is CANCELLING (the job should stop)
]]
local r = redis.call('HMGET', KEYS[1], 'state', 'handle', 'execution', 'closedHandle', 'closedStatus')
local state = r[1]
if not state then return { -1, 0, 0, 0 } end
local cancelling = (state == 'CANCELLING') and 1 or 0

local fp = ARGV[3]
if fp ~= '' then
  local rec = redis.call('GET', KEYS[2])
  if rec then
    -- record: "<fingerprint>|<seq>|<pending|done>"
    local sep = string.find(rec, '|', 1, true)
    if string.sub(rec, 1, sep - 1) ~= fp then return { -4, 0, 0, cancelling } end
    if string.sub(rec, -4) == 'done' then return { 2, 0, tonumber(r[3]), cancelling } end
    return { -5, 0, 0, cancelling }
  end
end

local h = ARGV[1]
if state == 'RUNNING' or state == 'CANCELLING' then
  if r[2] ~= h then return { -2, 0, 0, 0 } end
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  if fp ~= '' then
    redis.call('SET', KEYS[2], fp .. '|' .. seq .. '|pending', 'EX', tonumber(ARGV[4]))
  end
  return { 1, seq, tonumber(r[3]), cancelling }
end
if r[4] == h then
  if r[5] == ARGV[2] then return { 2, 0, tonumber(r[3]), 0 } end
  return { -3, state, 0, 0 }
end
if r[2] == h then return { -3, state, 0, 0 } end
return { -2, 0, 0, 0 }
