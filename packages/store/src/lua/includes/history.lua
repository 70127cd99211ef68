--[[
  history: appendHistory(key, req, entry, cap) adds a request's history entry (a table of the fields
  GET shows), newest first, the list capped at cap entries. Each entry is packed into one short
  string; the format and its one decoder are in packages/store/src/history-codec.ts. The header
  '<appliedAt>,<seq>' (base 36) of the newest entry, which older entries count their steps back
  from, is the request hash's field H_HEAD_FIELD: a push is one LPUSH (and an LTRIM once the list
  is full). A list written before the header moved there ends in the header '#<appliedAt>,<seq>':
  the first push moves it into the hash.
]]
--@include historyCodes

local H_B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local H_KNOWN = { outcome = true, status = true, from = true, to = true, appliedAt = true, acceptedAt = true,
  seq = true, lastSeq = true, execution = true, reason = true, message = true }

local function b36(n)
  if n < 0 then return '-' .. b36(-n) end
  if n == 0 then return '0' end
  local out = ''
  while n > 0 do
    local d = n % 36
    out = string.sub(H_B36, d + 1, d + 1) .. out
    n = (n - d) / 36
  end
  return out
end

-- b36 of the newest entry's time, for the header: every callback of a batch is applied at the same
-- time, so it is encoded once per script call (about 1.5 µs for a millisecond timestamp)
local H_T, H_T36
local function b36Time(t)
  if t ~= H_T then H_T, H_T36 = t, b36(t) end
  return H_T36
end

local function unb36(s)
  if string.sub(s, 1, 1) == '-' then return -tonumber(string.sub(s, 2), 36) end
  return tonumber(s, 36)
end

local H_FLOOR = math.floor
local function isInt(v)
  return type(v) == 'number' and v == H_FLOOR(v) and v < 9007199254740992 and v > -9007199254740992
end

-- the number a reason's decimal digits stand for, when it prints back as the same digits (else nil)
local function canonical(digits)
  if not digits or #digits > 15 then return nil end
  local n = tonumber(digits)
  if tostring(n) ~= digits then return nil end
  return n
end

-- e[k] as its code in tbl (a state's character, or an outcome's or status's number), or `none` when
-- e has no k; a value tbl has no code for goes to extra, and stands as `none` too
local function codeOf(e, extra, tbl, k, none)
  local v = e[k]
  if v == nil then return none end
  local c = type(v) == 'string' and tbl[v]
  if c then return c end
  extra[k] = v
  return none
end

-- entry → packed string; h = { t = appliedAt, s = seq } of the newest entry so far, updated
local function packHistory(e, h)
  local extra = {}
  for k, v in pairs(e) do
    if not H_KNOWN[k] then extra[k] = v end
  end
  -- outcome and status share the first character: H_HEAD[outcome * H_STATUS_BASE + status + 1]
  local head = codeOf(e, extra, H_OUTCOME, 'outcome', 0) * H_STATUS_BASE + codeOf(e, extra, H_STATUS, 'status', 0) + 1
  local from = codeOf(e, extra, H_STATE, 'from', '_')
  local out = { string.sub(H_HEAD, head, head), from }
  -- 'to' is left out when it equals 'from' (the state did not change)
  if not (e.to ~= nil and e.to == e.from and from ~= '_') then out[#out + 1] = codeOf(e, extra, H_STATE, 'to', '_') end
  local t = e.appliedAt
  if isInt(t) then
    local d = h.t and (t - h.t) or 0
    out[#out + 1] = d == 0 and 'A' or 'A' .. b36(d)
    h.t = t
    if isInt(e.acceptedAt) then
      out[#out + 1] = 'B' .. b36(t - e.acceptedAt)
    elseif e.acceptedAt ~= nil then
      extra.acceptedAt = e.acceptedAt
    end
  else
    if t ~= nil then extra.appliedAt = t end
    if e.acceptedAt ~= nil then extra.acceptedAt = e.acceptedAt end
  end
  local seq = e.seq
  if isInt(seq) then
    local d = h.s and (seq - h.s) or 1
    -- a callback's entry has a seq: its S is left out for the usual step of 1
    if d ~= 1 then
      out[#out + 1] = 'S' .. b36(d)
    elseif not H_SEQ_OUTCOME[e.outcome] then
      out[#out + 1] = 'S'
    end
    h.s = seq
    if isInt(e.lastSeq) then
      out[#out + 1] = 'Q' .. b36(e.lastSeq - seq)
    elseif e.lastSeq ~= nil then
      extra.lastSeq = e.lastSeq
    end
  else
    if H_SEQ_OUTCOME[e.outcome] then out[#out + 1] = 'N' end
    if seq ~= nil then extra.seq = seq end
    if e.lastSeq ~= nil then extra.lastSeq = e.lastSeq end
  end
  local x = e.execution
  if x == nil then
    out[#out + 1] = 'E'
  elseif isInt(x) then
    if x ~= 1 then out[#out + 1] = 'E' .. b36(x) end
  else
    out[#out + 1] = 'E'
    extra.execution = x
  end
  local r = e.reason
  if r ~= nil then
    local state = type(r) == 'string' and string.match(r, '^request is (.+)$')
    local gap = type(r) == 'string' and canonical(string.match(r, '^gap open (%d+) ms$'))
    local stale, current
    if type(r) == 'string' then stale, current = string.match(r, '^stale execution (%d+) %(current (%d+)%)$') end
    current = canonical(current)
    if r == 'resumed' then
      out[#out + 1] = 'P'
    elseif state and H_STATE[state] then
      out[#out + 1] = 'I' .. H_STATE[state]
    elseif gap then
      out[#out + 1] = 'G' .. b36(gap)
    elseif current and isInt(x) and stale == tostring(x) then
      out[#out + 1] = 'X' .. b36(current)
    else
      extra.reason = r
    end
  end
  if next(extra) ~= nil then
    if e.message ~= nil then extra.message = e.message end
    out[#out + 1] = 'J' .. cjson.encode(extra)
  elseif type(e.message) == 'string' then
    out[#out + 1] = 'M' .. e.message
  elseif e.message ~= nil then
    out[#out + 1] = 'J' .. cjson.encode({ message = e.message })
  end
  return table.concat(out)
end

-- Pushes entry onto history list key, given the header as the hash holds it (nil when it has none);
-- returns the new header, for the caller to store in the hash's H_HEAD_FIELD.
local function pushHistory(key, entry, cap, head)
  local h = {}
  if not head then
    local last = redis.call('LINDEX', key, -1)
    if last and string.sub(last, 1, 1) == '#' then
      redis.call('RPOP', key)
      head = string.sub(last, 2)
    end
  end
  if head then
    local t, s = string.match(head, '^([-0-9a-z]*),([-0-9a-z]*)$')
    if t and t ~= '' then h.t = unb36(t) end
    if s and s ~= '' then h.s = unb36(s) end
  end
  if redis.call('LPUSH', key, packHistory(entry, h)) > tonumber(cap) then
    redis.call('LTRIM', key, 0, tonumber(cap) - 1)
  end
  return (h.t and b36Time(h.t) or '') .. ',' .. (h.s and b36(h.s) or '')
end

-- Adds entry to the history list key of the request whose hash is req (which must exist).
local function appendHistory(key, req, entry, cap)
  local head = redis.call('HGET', req, H_HEAD_FIELD)
  redis.call('HSET', req, H_HEAD_FIELD, pushHistory(key, entry, cap, head or nil))
end
