-- appendHistory(key, entry, cap): a request's history entry, newest first, the list capped at cap entries
local function appendHistory(key, entry, cap)
  redis.call('LPUSH', key, cjson.encode(entry))
  redis.call('LTRIM', key, 0, tonumber(cap) - 1)
end
