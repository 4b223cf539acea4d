-- extend: ARGV ns, group, consumer, then 2 per entry: runnable, entry.
-- Resets the idle time of each entry `consumer` still holds (XCLAIM ... JUSTID does not count a
-- delivery), so the visibility timeout does not pass while its job runs. Returns the positions
-- (1-based, in entries) of those it no longer holds: reclaimed by another consumer, or acknowledged.
local group, consumer = ARGV[2], ARGV[3]
local lost = {}
for i = 4, #ARGV, 2 do
  local stream, entry = NS .. ':q:' .. ARGV[i], ARGV[i + 1]
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  if pending[1] and pending[1][2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, entry, 'JUSTID')
  else
    lost[#lost + 1] = (i - 2) / 2
  end
end
return lost
