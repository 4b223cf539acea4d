-- add: ARGV ns, now, ttl, max_results, max_bytes, id, d, stage, nbase, key, fp, finished (as put() takes them)
-- Returns nil when kept, or {id, d, k, f} of the record the key is bound to already (nothing stored).
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_results, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local id, d, stage, nbase, key, fp, finished = unpack(ARGV, 6, 12)
require_staged({stage})
if key ~= '' then
  local kept = bound(key, now, ttl)
  if kept then
    discard(stage)
    return kept
  end
end
put(id, d, stage, nbase, key, fp, finished, max_results, max_bytes)
return nil
