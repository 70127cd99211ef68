--[[
  index: the request index's upkeep, included where a script says "--@include index".
  The calling script passes the keys (built by packages/store/src/keys.ts) and calls these functions
  in the same atomic step that changes a request's state, so the index never drifts from the hashes.

  Index (lexicographic sorted set, all scores 0, one per partition), times as 15-digit ms so that
  lexicographic order is time order, fields separated by \31:
    a\31<submissionTime>\31<id>                      every request, by submission (first registration)
    j\31<jobDefinitionId>\31<submissionTime>\31<id>  requests with a jobDefinitionId, by submission
    s\31<state>\31<stateChangeTime>\31<id>           by state, by when the request entered it
  A request's hash field stateChangeTime holds the time of its current member s: a member whose
  time or state differs from its hash is stale, and the readers skip it.

  Expiry set (scored sorted set, one per partition): when a request turns terminal its members,
  joined by \30, are scored by when its hash expires; indexPrune takes them out of the index then.
  A re-registration after expiry has other times, so a prune never touches its members.
]]
--@include terminal

local IX_US, IX_RS = '\31', '\30'

local function ixTime(ms) return string.format('%015d', tonumber(ms)) end
local function ixAll(rid, sub) return 'a' .. IX_US .. ixTime(sub) .. IX_US .. rid end
local function ixJob(rid, job, sub) return 'j' .. IX_US .. job .. IX_US .. ixTime(sub) .. IX_US .. rid end
local function ixState(rid, state, since) return 's' .. IX_US .. state .. IX_US .. ixTime(since) .. IX_US .. rid end

-- Moves a request's state member from `from` to `to` (false when equal: nothing to do), given
-- h = { stateChangeTime, registeredAt, jobDefinitionId } as the request's hash holds them; the caller
-- then stores stateChangeTime = now. A request not indexed yet (new, or stored before the index
-- existed) also gets its submission and job members. A move into a terminal state files the members
-- under the hash's expiry time (now + retention s).
local function indexMove(ix, exp, rid, from, to, now, retention, h)
  if from == to then return false end
  local sub = h[2] or now
  local member = ixState(rid, to, now)
  if h[1] then
    redis.call('ZREM', ix, ixState(rid, from, h[1]))
    redis.call('ZADD', ix, 0, member)
  else
    redis.call('ZADD', ix, 0, member, 0, ixAll(rid, sub))
    if h[3] then redis.call('ZADD', ix, 0, ixJob(rid, h[3], sub)) end
  end
  if TERMINAL[to] then
    local members = { member, ixAll(rid, sub) }
    if h[3] then table.insert(members, ixJob(rid, h[3], sub)) end
    redis.call('ZADD', exp, tonumber(now) + tonumber(retention) * 1000, table.concat(members, IX_RS))
  end
  return true
end

-- indexMove, reading and writing the request's hash (key req) itself.
local function indexState(ix, exp, req, rid, from, to, now, retention)
  if from == to then return end
  indexMove(ix, exp, rid, from, to, now, retention, redis.call('HMGET', req, 'stateChangeTime', 'registeredAt', 'jobDefinitionId'))
  redis.call('HSET', req, 'stateChangeTime', now)
end

-- Call before storing a new jobDefinitionId on an indexed request: moves its job member.
local function indexJob(ix, req, rid, job)
  local h = redis.call('HMGET', req, 'stateChangeTime', 'registeredAt', 'jobDefinitionId')
  if not h[1] or h[3] == job then return end
  if h[3] then redis.call('ZREM', ix, ixJob(rid, h[3], h[2])) end
  redis.call('ZADD', ix, 0, ixJob(rid, job, h[2]))
end

-- Takes the members of requests whose hash has expired (score <= now) out of the index, at most
-- `limit` requests; returns how many.
local function indexPrune(ix, exp, now, limit)
  local due = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, limit)
  for _, entry in ipairs(due) do
    local from = 1
    while true do
      local at = string.find(entry, IX_RS, from, true)
      redis.call('ZREM', ix, string.sub(entry, from, (at or 0) - 1))
      if not at then break end
      from = at + 1
    end
    redis.call('ZREM', exp, entry)
  end
  return #due
end
