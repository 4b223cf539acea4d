-- ack: ARGV ns, group, then 3 per entry: runnable, entry, id. Acknowledges and deletes each entry
-- (and its payload, when large).
local group = ARGV[2]
for i = 3, #ARGV, 3 do
  local stream = NS .. ':q:' .. ARGV[i]
  redis.call('XACK', stream, group, ARGV[i + 1])
  redis.call('XDEL', stream, ARGV[i + 1])
  redis.call('DEL', NS .. ':x:' .. ARGV[i + 2], payload_key(ARGV[i], ARGV[i + 1]))
end
return #ARGV
