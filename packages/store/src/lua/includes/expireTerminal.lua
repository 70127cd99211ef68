-- expireRequest(keys, seconds): a request that reached a terminal state keeps its keys (hash, buffer,
-- history, skipped seqs) for the retention period, then Redis drops them
local function expireRequest(keys, seconds)
  for _, k in ipairs(keys) do redis.call('EXPIRE', k, tonumber(seconds)) end
end
