#!lua flags=no-writes
--[[
  read-2: a request's fields and history in one atomic read. A script rather than MULTI: Redis at
  maxmemory refuses every command queued in a MULTI, reads included, but runs a script declared
  no-writes, so request details stay readable while a full Redis refuses writes.

  KEYS[1] request hash   KEYS[2] history

  Returns { fields, history }: fields as HGETALL's flat list, history newest first
]]
return { redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1) }
