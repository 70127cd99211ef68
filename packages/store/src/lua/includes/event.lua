-- addEvent(stream, maxlen, fields, eventSeq): a state change of a request on the partition's event
-- stream (flat field list), numbered eventSeq, the request's own sequence of events (the order
-- webhook subscriptions deliver in; the caller stores it as the hash's eventSeq), the stream trimmed
-- to about maxlen entries
local function addEvent(stream, maxlen, fields, eventSeq)
  table.insert(fields, 'eventSeq'); table.insert(fields, eventSeq)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end

-- publishEvent(stream, maxlen, req, fields): addEvent with the next eventSeq of the request (hash key req)
local function publishEvent(stream, maxlen, req, fields)
  addEvent(stream, maxlen, fields, redis.call('HINCRBY', req, 'eventSeq', 1))
end
