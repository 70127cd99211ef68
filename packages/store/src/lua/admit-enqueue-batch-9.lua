#!lua
--[[
  admit-enqueue-batch-9: the callbacks a gateway accepted together (one batch group: every partition on
  a single Redis, one partition on Redis Cluster, see RequestStore.batchGroup), admitted and enqueued in
  ONE script call. Each callback goes through admit-2 unchanged (composed as the include 'admit', the
  one source of the admit rules, in arrival order) with its own request's keys, and gets its own reply.
  The admitted ones are enqueued in the queue of callback 1's partition (KEYS[1..9]) by BullMQ's own
  addStandardJob (composed as 'addStandardJob', as admit-enqueue-11 does):
  - one admitted callback of the queue's partition: exactly admit-enqueue-11's job (id
    "<requestId>-<seq>", name ARGV[4], data the callback job);
  - otherwise: ONE job named ARGV[5], id "b-<requestId>-<seq>" of its first callback, data
    {"v":1,"callbacks":[<callback job>, ...]}, and an in-flight marker per callback in its OWN
    partition's marker hash ("<requestId>-<seq>" → the batch job id), which stands for the job hash a
    single job would have in that partition's queue (the gap check of that partition never skips a
    marked seq) until apply-batch applies it or its dead letter is written. A callback of another
    partition than the queue's is therefore always carried by a batch job, even alone;
  - a RESUMED callback (a pending record of ENQUEUE_MODE=queue whose gateway died) of the queue's
    partition gets its own single job under its first seq and deterministic job id, as admit-enqueue-11
    gives it; one of another partition goes into the batch job (if its first job is still queued too,
    the later of the two to be applied is a duplicate).
  Idempotency-Key records are written "done" only after every job is added, in the same atomic step:
  if an add fails the script errors before writing any record (admitted seqs stay unused: gaps the
  worker skips after its timeout). The gateway never puts two callbacks with the same request and
  Idempotency-Key in one batch (the second waits for the next), so a key is decided once per call.
  Every key comes in KEYS; on Redis Cluster they all carry one partition's hash tag (one slot).

  KEYS[1..9]  the queue's keys (callback 1's partition) in addStandardJob's order:
              wait, paused, meta, id, completed, delayed, active, events, marker
  KEYS[7+3i], KEYS[8+3i], KEYS[9+3i], i = 1..n: callback i's request hash and idempotency record (as
              admit-2, Keys.admitKeys), and its partition's in-flight markers <prefix>:{pN}:inflight

  ARGV[1]     the queue's key prefix   <prefix>:{pN}:callbacks:   (BullMQ's queueKeys[''])
  ARGV[2]     the job options Queue.add encodes, as JSON (EnqueueTemplate.jsonOpts); jobId replaced per job
  ARGV[3]     seconds an idempotency record lives
  ARGV[4]     job name of a single callback      ARGV[5]  job name of a batch
  ARGV[6i..6i+5], i = 1..n: callback i's handle digest, status, idempotency fingerprint ('' when
              none), request id, acceptedAt (ms), and the rest of its job data as a JSON object
              {"status":..,"message"?:..,"acceptedAt":..,"traceparent"?:..}

  Returns { code1, seq1, execution1, cancelling1, code2, ... }: admit-2's reply for each callback.
]]
--@include codes
--@include callbackStates
--@include jobId

--@include admit

local function addStandardJob(KEYS, ARGV)
--@include addStandardJob
end

local queueKeys = { KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9] }
local opts = cjson.decode(ARGV[2])

local function add(jobId, name, timestamp, data)
  opts['jobId'] = jobId
  -- BullMQ's args array: prefix key, job id, name, timestamp; parent/repeat/dedup fields stay nil
  local added = addStandardJob(queueKeys,
    { cmsgpack.pack({ ARGV[1], jobId, name, timestamp }), data, cmsgpack.pack(opts) })
  if type(added) == 'number' and added < 0 then
    error('addStandardJob failed with code ' .. added)
  end
end

local n = (#ARGV - 5) / 6
-- the queue's partition: callback 1's (its in-flight marker hash names it)
local home = KEYS[12]
local out = {}
-- the admitted callbacks: { request id, seq, job data, acceptedAt, marker hash, of the queue's partition }
local batch = {}
local done = {}
for i = 1, n do
  local a = 6 * i
  local rid = ARGV[a + 3]
  local r = admit(KEYS[7 + 3 * i], KEYS[8 + 3 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[3], '0')
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
  out[#out + 1] = r[4]
  if r[1] == CODE.ADMITTED or r[1] == CODE.RESUMED then
    local seq = r[2]
    local data = '{"v":1,"requestId":"' .. rid .. '","seq":' .. seq .. ',"execution":' .. r[3] .. ','
      .. string.sub(ARGV[a + 5], 2)
    local mark = KEYS[9 + 3 * i]
    local cb = { rid = rid, seq = seq, data = data, at = tonumber(ARGV[a + 4]), mark = mark, home = mark == home }
    if r[1] == CODE.RESUMED and cb.home then
      add(callbackJobId(rid, seq), ARGV[4], cb.at, data)
    else
      batch[#batch + 1] = cb
    end
    if ARGV[a + 2] ~= '' then done[#done + 1] = { KEYS[8 + 3 * i], ARGV[a + 2] .. '|' .. seq .. '|done' } end
  end
end

if #batch == 1 and batch[1].home then
  local cb = batch[1]
  add(callbackJobId(cb.rid, cb.seq), ARGV[4], cb.at, cb.data)
elseif #batch > 0 then
  local first = batch[1]
  local jobId = 'b-' .. callbackJobId(first.rid, first.seq)
  -- marker hash → { field, value, ... }, one HSET per partition
  local datas, marks, hashes = {}, {}, {}
  for i, cb in ipairs(batch) do
    datas[i] = cb.data
    local m = marks[cb.mark]
    if not m then
      m = {}
      marks[cb.mark] = m
      hashes[#hashes + 1] = cb.mark
    end
    m[#m + 1] = callbackJobId(cb.rid, cb.seq)
    m[#m + 1] = jobId
  end
  add(jobId, ARGV[5], first.at, '{"v":1,"callbacks":[' .. table.concat(datas, ',') .. ']}')
  for _, h in ipairs(hashes) do redis.call('HSET', h, unpack(marks[h])) end
end

for _, d in ipairs(done) do
  redis.call('SET', d[1], d[2], 'EX', ARGV[3])
end
return out
