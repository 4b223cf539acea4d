-- add: ARGV ns, now, ttl, max_results, max_bytes, id, d, nbase, key, fp, finished
-- Returns nil when kept, or {id, d, k, f} of the record the key is bound to already (nothing stored).
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_results, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local id, d, nbase, key, fp, finished = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if key ~= '' then
  local kept = bound(key, now, ttl)
  if kept then return kept end
end
put(id, d, nbase, key, fp, finished, max_results, max_bytes)
return nil
