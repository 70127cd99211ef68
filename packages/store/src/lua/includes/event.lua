-- publishEvent(stream, maxlen, fields): a state change on the partition's event stream (flat field list),
-- trimmed to about maxlen entries
local function publishEvent(stream, maxlen, fields)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end
