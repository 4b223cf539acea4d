-- submit: ARGV ns, group, now, ttl, max_results, max_bytes, consumer, then 12 per job:
--   runnable, id, d, stage, nbase, key, fp, finished (the queued record, as put() takes it),
--   message (the packed job), payload (the name its payload is staged at when large, its message
--   then holding an empty payload; else ''), max_queue (0: no bound),
--   take ('1': the submitting node runs it, read here for `consumer`; '': any node).
-- A large payload goes to NS:p:RUNNABLE:ENTRY and its entry gets field p = '1' (see queue.py).
-- Per job, in order, one of
--   {'q', entry}        queued: the job is in stream NS:q:RUNNABLE and its record kept
--   {'t', entry}        queued and taken: as 'q', and the entry is delivered to `consumer` (its first
--                       delivery), its record says running on `consumer` since `now`
--   {'o', entry, other, fields}
--                       queued, and the read for `consumer` took an older entry `other` (with its
--                       `fields`) of the same stream: `consumer` holds that one, to begin as a consumed one
--   {'k', id, d, k, f}  the key is bound to a kept record already: nothing done
--   {'e'}               the id is kept already (a retried call that ran): nothing done
--   {'f'}               the runnable's stream holds max_queue jobs: nothing done
local group, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_results, max_bytes, consumer = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local PER_JOB = 12

-- Why the job cannot be queued ({'k', ...}, {'e'} or {'f'}), or nil (its stream and group exist then).
local function refusal(id, key, stream, max_queue)
  if key ~= '' then
    local kept = bound(key, now, ttl)
    if kept then return {'k', kept[1], kept[2], kept[3], kept[4]} end
  end
  if redis.call('EXISTS', record_key(id)) == 1 then return {'e'} end
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  elseif tonumber(max_queue) > 0 and redis.call('XLEN', stream) >= tonumber(max_queue) then
    return {'f'}
  end
end

local function submit(runnable, id, d, stage, nbase, key, fp, finished, message, payload, max_queue, take)
  local stream = NS .. ':q:' .. runnable
  local refused = refusal(id, key, stream, max_queue)
  if refused then
    discard(stage, payload)
    return refused
  end
  local entry
  if payload == '' then
    entry = redis.call('XADD', stream, '*', 'j', message)
  else
    entry = redis.call('XADD', stream, '*', 'j', message, 'p', '1')
    place(payload, payload_key(runnable, entry))
  end
  put(id, d, stage, nbase, key, fp, finished, max_results, max_bytes)
  if take == '' then return {'q', entry} end
  -- The oldest entry no consumer was given yet: this one, unless others wait before it.
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  local other = read[1][2][1]
  if other[1] ~= entry then return {'o', entry, other[1], other[2]} end
  redis.call('HSET', record_key(id), 's', now, 'o', consumer)
  return {'t', entry}
end

local stages = {}
for i = 8, #ARGV, PER_JOB do
  stages[#stages + 1], stages[#stages + 2] = ARGV[i + 3], ARGV[i + 9]
end
require_staged(stages)
local out = {}
for i = 8, #ARGV, PER_JOB do
  out[#out + 1] = submit(unpack(ARGV, i, i + PER_JOB - 1))
end
return out
