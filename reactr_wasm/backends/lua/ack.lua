-- ack: ARGV ns, group, then 3 per entry: runnable, entry, id. Acknowledges and deletes each entry
-- (and its payload, when large).
local group = ARGV[2]
for i = 3, #ARGV, 3 do
  remove_entry(group, ARGV[i], ARGV[i + 1], ARGV[i + 2])
end
return #ARGV
