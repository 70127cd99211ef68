-- callbackJobId(requestId, seq): the BullMQ job id of a callback, as keys.ts callbackJobId builds it:
-- deterministic, so adding the same callback twice adds one job
local function callbackJobId(requestId, seq)
  return requestId .. '-' .. seq
end
