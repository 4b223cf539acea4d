-- submit: ARGV ns, group, now, ttl, max_results, max_bytes, consumer, then 10 per job:
--   runnable, id, d, nbase, key, fp, finished (''), message (the packed job), max_queue (0: no bound),
--   take ('1': the submitting node runs it, read here for `consumer`; '': any node).
-- Per job, in order, one of
--   {'q', entry}        queued: the job is in stream NS:q:RUNNABLE and its record kept
--   {'t', entry}        queued and taken: as 'q', and the entry is delivered to `consumer` (its first
--                       delivery), its record says running on `consumer` since `now`
--   {'o', entry, other, message}
--                       queued, and the read for `consumer` took an older entry `other` (packed job
--                       `message`) of the same stream: `consumer` holds that one, to begin as a consumed one
--   {'k', id, d, k, f}  the key is bound to a kept record already: nothing done
--   {'e'}               the id is kept already (a retried call that ran): nothing done
--   {'f'}               the runnable's stream holds max_queue jobs: nothing done
local group, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_results, max_bytes, consumer = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]

local function submit(runnable, id, d, nbase, key, fp, finished, message, max_queue, take)
  if key ~= '' then
    local kept = bound(key, now, ttl)
    if kept then return {'k', kept[1], kept[2], kept[3], kept[4]} end
  end
  if redis.call('EXISTS', record_key(id)) == 1 then return {'e'} end
  local stream = NS .. ':q:' .. runnable
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  elseif tonumber(max_queue) > 0 and redis.call('XLEN', stream) >= tonumber(max_queue) then
    return {'f'}
  end
  local entry = redis.call('XADD', stream, '*', 'j', message)
  put(id, d, nbase, key, fp, finished, max_results, max_bytes)
  if take == '' then return {'q', entry} end
  -- The oldest entry no consumer was given yet: this one, unless others wait before it.
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  local other = read[1][2][1]
  if other[1] ~= entry then return {'o', entry, other[1], other[2][2]} end
  redis.call('HSET', record_key(id), 's', now, 'o', consumer)
  return {'t', entry}
end

local out = {}
for i = 8, #ARGV, 10 do
  out[#out + 1] = submit(unpack(ARGV, i, i + 9))
end
return out
