-- cancel: ARGV ns, id, mark_ms. Marks the job cancelled (a queued entry is skipped when
-- consumed) and tells the node running it (channel NS:cancel).
redis.call('SET', NS .. ':x:' .. ARGV[2], '1', 'PX', ARGV[3])
return redis.call('PUBLISH', NS .. ':cancel', ARGV[2])
