-- complete: ARGV ns, group, max_results, max_bytes, node, then 9 per finished job:
--   runnable, entry, id, d, nbase, finished, ack ('1': acknowledge and delete the entry now),
--   dead (deliveries, when the job goes to the dead-letter stream NS:dead:RUNNABLE; else ''),
--   reason (why it died, or '').
-- Stores each outcome as finish() in records.lua does (the first one stored stands) and
-- returns its reply, per job in order. Outcome and acknowledgement are one step: a job is
-- never acknowledged without its outcome stored.
local group, max_results, max_bytes, node = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local out = {}
for i = 6, #ARGV, 9 do
  local runnable, entry, id, d, nbase, finished, ack, dead, reason = unpack(ARGV, i, i + 8)
  local stream = NS .. ':q:' .. runnable
  out[#out + 1] = finish(id, d, nbase, '', '', finished, max_results, max_bytes)
  if dead ~= '' then
    local kept = redis.call('XRANGE', stream, entry, entry)
    local message = kept[1] and kept[1][2][2] or ''
    redis.call('XADD', NS .. ':dead:' .. runnable, 'MAXLEN', '~', 10000, '*',
      'j', message, 'id', id, 'deliveries', dead, 'reason', reason, 'node', node, 'at', finished)
  end
  if ack == '1' then
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
    redis.call('DEL', NS .. ':x:' .. id)
  end
end
return out
