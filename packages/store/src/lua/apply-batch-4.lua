#!lua
--[[
  apply-batch-4: applies the callbacks of one batch job (several callbacks of one partition, in the
  order the gateway admitted them) in ONE script call. Each callback goes through apply-8 unchanged,
  composed as the include 'apply' (the one source of the state machine, the reorder buffer and the
  duplicate rule), with its own request's keys; then its in-flight marker is cleared in the same
  atomic step, except for a callback whose request is gone: its marker stays until its dead letter is
  written (the worker does that next; a crash in between runs the batch again). A batch run again (a stalled or killed worker) applies nothing twice: each callback is
  then a duplicate (seq already applied), and its marker is already gone.

  KEYS[1] event stream        <prefix>:{pN}:events
  KEYS[2] request index       <prefix>:{pN}:ix
  KEYS[3] index expiry set    <prefix>:{pN}:ix:exp
  KEYS[4] in-flight markers   <prefix>:{pN}:inflight  (hash "<id>-<seq>" → batch job id)
  KEYS[4i+1..4i+4], i = 1..n: callback i's request hash, reorder buffer, history, skipped seqs
          (<prefix>:{pN}:req:<id>, :buf, :hist, :skip); a request with several callbacks repeats them

  ARGV[1] now (ms)   ARGV[2] history cap   ARGV[3] event stream MAXLEN   ARGV[4] retention (s)
  ARGV[5] gap timeout (ms)
  ARGV[4+2i], ARGV[5+2i], i = 1..n: callback i's request id and its callback job JSON (as apply-8's ARGV[2])

  Returns { result1, missing1, n1, result2, missing2, n2, ... }: apply-8's reply for each callback, in order.
]]
--@include transitions
--@include terminal
--@include callbackStates
--@include history
--@include event
--@include expireTerminal
--@include index
--@include jobId

local function apply(KEYS, ARGV)
--@include apply
end

local n = (#ARGV - 5) / 2
local out = {}
for i = 1, n do
  local k = 4 * i
  local rid, json = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local r = apply({ KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[1], KEYS[k + 4], KEYS[2], KEYS[3], KEYS[4] },
    { 'cb', json, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], 0, rid })
  if r[1] ~= 'gone' then redis.call('HDEL', KEYS[4], callbackJobId(rid, cjson.decode(json).seq)) end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
end
return out
