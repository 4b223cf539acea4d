-- submit: ARGV ns, group, now, ttl, max_results, max_bytes, then 9 per job:
--   runnable, id, d, nbase, key, fp, finished (''), message (the packed job), max_queue (0: no bound).
-- Per job, in order, one of
--   {'q', entry}        queued: the job is in stream NS:q:RUNNABLE and its record kept
--   {'k', id, d, k, f}  the key is bound to a kept record already: nothing done
--   {'e'}               the id is kept already (a retried call that ran): nothing done
--   {'f'}               the runnable's stream holds max_queue jobs: nothing done
local group, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_results, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])

local function submit(runnable, id, d, nbase, key, fp, finished, message, max_queue)
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
  return {'q', entry}
end

local out = {}
for i = 7, #ARGV, 9 do
  out[#out + 1] = submit(unpack(ARGV, i, i + 8))
end
return out
