#!lua
--[[
  takeIdleMarker-3: takes a partition queue's base wake-up marker back when no job waits. BullMQ puts the
  marker back whenever a worker takes a job (for other consumers); with nothing left in the queue it only
  wakes the worker's own blocking read for a fetch that finds nothing. Atomic with the producers' scripts
  (they push the job and add the marker in one script), so no wake-up for a waiting job is ever taken;
  delayed jobs have their own marker member ("1"), left alone.

  KEYS[1] the queue's wait list          <prefix>:{pN}:callbacks:wait
  KEYS[2] the queue's prioritized set    <prefix>:{pN}:callbacks:prioritized
  KEYS[3] the queue's marker             <prefix>:{pN}:callbacks:marker

  Returns 1 when the marker was taken, else 0
]]
if redis.call("LLEN", KEYS[1]) == 0 and redis.call("ZCARD", KEYS[2]) == 0 then
  return redis.call("ZREM", KEYS[3], "0")
end
return 0
