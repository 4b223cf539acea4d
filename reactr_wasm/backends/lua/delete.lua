-- delete: ARGV ns, id. Returns {d, k, f} of the record dropped, or nil.
local kept = redis.call('HMGET', record_key(ARGV[2]), 'd', 'k', 'f')
if not kept[1] then return nil end
kept[1] = record_data(ARGV[2], kept[1])
drop(ARGV[2])
return kept
