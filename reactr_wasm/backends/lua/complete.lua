-- complete: ARGV ns, group, max_results, max_bytes, node, then 10 per finished job:
--   runnable, entry, id, d, stage (as finish() takes them), nbase, finished,
--   ack ('1': acknowledge and delete the entry now),
--   dead (deliveries, when the job goes to the dead-letter stream NS:dead:RUNNABLE; else ''),
--   reason (why it died, or '').
-- Stores each outcome as finish() in records.lua does (the first one stored stands) and
-- returns its reply, per job in order. Outcome and acknowledgement are one step: a job is
-- never acknowledged without its outcome stored.
local group, max_results, max_bytes, node = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local PER_JOB = 10
local stages = {}
for i = 6, #ARGV, PER_JOB do stages[#stages + 1] = ARGV[i + 4] end
require_staged(stages)
local out = {}
for i = 6, #ARGV, PER_JOB do
  local runnable, entry, id, d, stage, nbase, finished, ack, dead, reason = unpack(ARGV, i, i + PER_JOB - 1)
  local stream = NS .. ':q:' .. runnable
  out[#out + 1] = finish(id, d, stage, nbase, '', '', finished, max_results, max_bytes)
  if dead ~= '' then
    -- The dead letter keeps the job whole: field p holds a large payload (the job's own is then empty).
    local kept = redis.call('XRANGE', stream, entry, entry)
    local fields = kept[1] and kept[1][2] or {'j', ''}
    local letter = {'j', fields[2], 'id', id, 'deliveries', dead, 'reason', reason, 'node', node, 'at', finished}
    if fields[3] == 'p' then
      letter[#letter + 1], letter[#letter + 2] = 'p', redis.call('GET', payload_key(runnable, entry)) or ''
    end
    redis.call('XADD', NS .. ':dead:' .. runnable, 'MAXLEN', '~', 10000, '*', unpack(letter))
  end
  if ack == '1' then remove_entry(group, runnable, entry, id) end
end
return out
