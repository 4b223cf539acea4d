-- beat: ARGV ns, node, info (packed), ttl_ms. Announces `node` for ttl_ms (key NS:node:NODE and zset
-- NS:nodes, scored by when the announcement lapses, on Redis's clock), forgets nodes whose
-- announcement lapsed, and returns the info of every live node.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nodes = NS .. ':nodes'
redis.call('SET', NS .. ':node:' .. ARGV[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', nodes, now + tonumber(ARGV[4]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now)
local live = {}
for _, id in ipairs(redis.call('ZRANGE', nodes, 0, -1)) do
  local info = redis.call('GET', NS .. ':node:' .. id)
  if info then live[#live + 1] = info end
end
return live
