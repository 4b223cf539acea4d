-- leave: ARGV ns, node. The node stops being counted at once (a graceful stop).
redis.call('DEL', NS .. ':node:' .. ARGV[2])
return redis.call('ZREM', NS .. ':nodes', ARGV[2])
