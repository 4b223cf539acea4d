-- begin: ARGV ns, group, node, now, then 3 per delivered entry: runnable, entry, id.
-- Per entry, in order, {state, deliveries, d, k, f}:
--   'c'  cancelled (NS:x:ID is set): do not run it
--   'd'  its record is finished already (d, k, f: that record): do not run it again
--   'r'  run it; its record (if kept) now says running on `node` since `now`
-- deliveries: how often the entry was delivered, this time included (the attempt number).
local group, node, now = ARGV[2], ARGV[3], ARGV[4]
local out = {}
for i = 5, #ARGV, 3 do
  local stream, entry, id = NS .. ':q:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  local deliveries = pending[1] and pending[1][4] or 1
  if redis.call('EXISTS', NS .. ':x:' .. id) == 1 then
    out[#out + 1] = {'c', deliveries}
  else
    local kept = redis.call('HMGET', record_key(id), 'd', 'k', 'f', 't')
    if kept[4] then
      out[#out + 1] = {'d', deliveries, record_data(id, kept[1]), kept[2], kept[3]}
    else
      if kept[1] then redis.call('HSET', record_key(id), 's', now, 'o', node) end
      out[#out + 1] = {'r', deliveries}
    end
  end
end
return out
