#!lua flags=no-writes
--[[
  queueCounts-1: the job counts of one BullMQ queue by state, read as BullMQ's getCounts script reads
  them (Queue.getJobCounts), and the timestamp of the queue's oldest waiting job, in one read-only
  call: the gateway's metrics, console and backlog read queue counts without loading bullmq.

  KEYS[1]  the queue's key prefix <prefix>:<name>: (BullMQ's queueKeys[''], see Keys.queueKeys)
  ARGV     the states to count: wait, paused and active are lists; the others (delayed, prioritized,
           failed, completed, waiting-children) sorted sets

  Returns { count of each state in ARGV's order..., timestamp (ms) of the oldest waiting job or -1 }

  A wait or paused list that ends with a marker of BullMQ before v5 ('0:...') is counted without it;
  BullMQ's script pops such a marker, this one only reads.
]]
local rcall = redis.call
local prefix = KEYS[1]
local results = {}

local function waitingCount(key)
  local count = rcall('LLEN', key)
  if count > 0 then
    local last = rcall('LINDEX', key, -1)
    if string.sub(last, 1, 2) == '0:' then return count - 1 end
  end
  return count
end

for i = 1, #ARGV do
  local state = ARGV[i]
  local key = prefix .. state
  if state == 'wait' or state == 'paused' then
    results[#results + 1] = waitingCount(key)
  elseif state == 'active' then
    results[#results + 1] = rcall('LLEN', key)
  else
    results[#results + 1] = rcall('ZCARD', key)
  end
end

-- the oldest waiting job is the wait list's last entry (jobs are pushed at its head); entries without
-- a job hash (a marker, a job removed meanwhile) are skipped, as Queue.getJobs skips them
local oldest = -1
local ids = rcall('LRANGE', prefix .. 'wait', -16, -1)
for i = #ids, 1, -1 do
  local ts = rcall('HGET', prefix .. ids[i], 'timestamp')
  if ts then
    oldest = tonumber(ts)
    break
  end
end
results[#results + 1] = oldest
return results
