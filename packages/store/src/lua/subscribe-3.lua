#!lua
--[[
  subscribe-3: adds a webhook subscription to a request, atomically with reading where the request's
  events stand: the subscription receives the events after `since` (the request's eventSeq now).

  KEYS[1] request hash   KEYS[2] the request's subscriptions (hash URL → subscription id)
  KEYS[3] the subscription's hash

  ARGV[1] callback URL   ARGV[2] subscription id   ARGV[3] the sealed (encrypted) secret
  ARGV[4] now (ms)

  Returns { code, since }, code from CODE (codes.ts): SUBSCRIBED, ALREADY_SUBSCRIBED (nothing
  changed) or NOT_FOUND
]]
--@include codes

if redis.call('EXISTS', KEYS[1]) == 0 then return { CODE.NOT_FOUND, 0 } end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return { CODE.ALREADY_SUBSCRIBED, 0 } end
local since = tonumber(redis.call('HGET', KEYS[1], 'eventSeq') or '0')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'url', ARGV[1], 'secret', ARGV[3], 'createdAt', ARGV[4], 'since', since,
  'next', since + 1)
-- a request that has ended expires, and its subscriptions with it
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
return { CODE.SUBSCRIBED, since }
