-- sweep: ARGV ns, cutoff (drop what finished at or before it), limit. Returns how many were dropped.
local ids = redis.call('ZRANGEBYSCORE', FIN, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do drop(id) end
return #ids
