-- get: ARGV ns, then ids. Per id, in order: {d, k, f, s} (all nil when the record is not kept).
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('HMGET', record_key(ARGV[i]), 'd', 'k', 'f', 's')
end
return out
