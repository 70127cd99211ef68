#!lua
--[[
  apply-batch-0: applies the callbacks of one batch job (one batch group: callbacks of any partitions on
  a single Redis, of one partition on Redis Cluster; in the order the gateway admitted them) in ONE
  script call. Each callback goes through apply-8 unchanged, composed as the include 'apply' (the one
  source of the state machine, the reorder buffer and the duplicate rule; its run() is called once per
  callback, its functions are defined once per batch), with its own request's and
  its own partition's keys (and the job decoded once, as ARGV.job); its in-flight marker (in its own
  partition's marker hash) is cleared in the same atomic step, except for a callback whose request is
  gone: its marker stays until its dead letter is written (the worker does that next; a crash in between runs the batch again). A batch run
  again (a stalled or killed worker) applies nothing twice: each callback is then a duplicate (seq
  already applied), and its marker is already gone.
  Every key comes in KEYS; on Redis Cluster they all carry one partition's hash tag (one slot).

  KEYS[8i-7..8i], i = 1..n: callback i's keys in apply-8's order (Keys.applyKeys): request hash, reorder
          buffer, history, its partition's event stream, skipped seqs, its partition's request index and
          index expiry set, its partition's in-flight markers (hash "<id>-<seq>" → batch job id); a
          request with several callbacks repeats them

  ARGV[1] now (ms)   ARGV[2] history cap   ARGV[3] event stream MAXLEN   ARGV[4] retention (s)
  ARGV[5] gap timeout (ms)
  ARGV[4+2i], ARGV[5+2i], i = 1..n: callback i's request id and its callback job JSON (as apply-8's ARGV[2])

  Returns { result1, missing1, n1, held1, result2, ... }: apply-8's reply for each callback, in order.
]]
--@include transitions
--@include terminal
--@include callbackStates
--@include history
--@include event
--@include expireTerminal
--@include index
--@include jobId

--@include apply

local n = (#ARGV - 5) / 2
local out = {}
-- the in-flight markers to clear, per marker hash (one HDEL each at the end: nothing in between reads
-- the marker of a callback that came earlier in the batch)
local done, order = {}, {}
for i = 1, n do
  local k = 8 * i
  local rid, json = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local job = cjson.decode(json)
  local args = { 'cb', json, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], 0, rid }
  args.job = job
  local r = run({ KEYS[k - 7], KEYS[k - 6], KEYS[k - 5], KEYS[k - 4], KEYS[k - 3], KEYS[k - 2], KEYS[k - 1], KEYS[k] }, args)
  if r[1] ~= 'gone' then
    local markers = done[KEYS[k]]
    if not markers then
      markers = {}
      done[KEYS[k]] = markers
      order[#order + 1] = KEYS[k]
    end
    markers[#markers + 1] = callbackJobId(rid, job.seq)
  end
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
  out[#out + 1] = r[4] or 0
end
for _, key in ipairs(order) do redis.call('HDEL', key, unpack(done[key])) end
return out
