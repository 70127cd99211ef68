-- publishEvent(stream, maxlen, req, fields): a state change of the request (hash key req) on the
-- partition's event stream (flat field list), numbered by the request's own eventSeq (the order
-- webhook subscriptions deliver in), the stream trimmed to about maxlen entries
local function publishEvent(stream, maxlen, req, fields)
  table.insert(fields, 'eventSeq'); table.insert(fields, redis.call('HINCRBY', req, 'eventSeq', 1))
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end
