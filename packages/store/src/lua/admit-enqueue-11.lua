#!lua
--[[
  admit-enqueue-11: admit-2 and BullMQ's own addStandardJob in ONE script, so an accepted callback
  costs the gateway one round trip, and its Idempotency-Key's final record is written in the same
  atomic step as the job: no crash of the gateway or of Redis can leave an admitted key without its
  answer. The loader (scripts.ts) injects both sources unchanged, by the includes 'admit' (admit-2
  without its standalone entry: its admit() is called below) and 'addStandardJob' (wrapped as a
  function taking (KEYS, ARGV)): admit-2.lua stays the one source of
  the admit rules, and the enqueue is the exact script BullMQ's Queue.add runs (from the installed
  bullmq package).
  All keys carry the partition's hash tag: one slot, Redis Cluster-safe.

  KEYS[1]     request hash            <prefix>:{pN}:req:<id>
  KEYS[2]     idempotency record      (= KEYS[1] when no key is given), as admit-2
  KEYS[3..11] the partition queue's keys in addStandardJob's order:
              wait, paused, meta, id, completed, delayed, active, events, marker

  ARGV[1..4]  as admit-2 (handle digest, status, idempotency fingerprint, record lifetime in seconds)
  ARGV[5]     the queue's key prefix   <prefix>:{pN}:callbacks:   (BullMQ's queueKeys[''])
  ARGV[6]     request id (canonical decimal)
  ARGV[7]     job name
  ARGV[8]     acceptedAt, ms: the job's timestamp and data.acceptedAt
  ARGV[9]     the rest of the job data as a JSON object: {"status":..,"message"?:..,"acceptedAt":..,"traceparent"?:..}
  ARGV[10]    the job options Queue.add encodes, as JSON (EnqueueTemplate.jsonOpts, checked against
              BullMQ's own encoding); its jobId is replaced by this job's id

  Returns admit-2's reply. Codes ADMITTED and RESUMED (RESUMED: a pending record left by a gateway in
  ENQUEUE_MODE=queue that died) are returned only after the job is in the queue, as job id
  "<requestId>-<seq>" with data {v,requestId,seq,execution,status,message?,acceptedAt,traceparent?}, and with the
  Idempotency-Key's record "done". If the add fails the script errors before writing any record
  (the seq stays unused: the worker skips the gap after its timeout; a retry is admitted afresh).
]]
--@include codes
--@include jobId

--@include admit

local function addStandardJob(KEYS, ARGV)
--@include addStandardJob
end

-- lease '0': no pending record, the final one is written below, after the add
local r = admit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], '0')
if r[1] ~= CODE.ADMITTED and r[1] ~= CODE.RESUMED then return r end

local rid, seq = ARGV[6], r[2]
local jobId = callbackJobId(rid, seq)
local data = '{"v":1,"requestId":"' .. rid .. '","seq":' .. seq .. ',"execution":' .. r[3] .. ','
  .. string.sub(ARGV[9], 2)
local opts = cjson.decode(ARGV[10])
opts['jobId'] = jobId
-- BullMQ's args array: prefix key, job id, name, timestamp; parent/repeat/dedup fields stay nil
local args = cmsgpack.pack({ ARGV[5], jobId, ARGV[7], tonumber(ARGV[8]) })
local added = addStandardJob(
  { KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11] },
  { args, data, cmsgpack.pack(opts) })
if type(added) == 'number' and added < 0 then
  return redis.error_reply('ERR addStandardJob failed with code ' .. added)
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3] .. '|' .. seq .. '|done', 'EX', ARGV[4])
end
return r
