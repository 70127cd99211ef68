#!lua
--[[
  pruneIndex-2: takes the members of a partition's expired terminal requests (their hashes are gone)
  out of its request index. Called by the timeout sweep with each sweep of the partition.

  KEYS[1] request index      <prefix>:{pN}:ix      (include 'index')
  KEYS[2] index expiry set   <prefix>:{pN}:ix:exp
  ARGV[1] now (ms)
  ARGV[2] most requests pruned by one call

  Returns { pruned }
]]
--@include index

return { indexPrune(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2])) }
