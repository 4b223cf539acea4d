-- finish: ARGV ns, max_results, max_bytes, id, d, stage, nbase, key, fp, finished. Returns as finish() in records.lua.
require_staged({ARGV[6]})
return finish(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[2]), tonumber(ARGV[3]))
