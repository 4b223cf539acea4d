-- size: ARGV ns. Returns {records, bytes}.
return {redis.call('ZCARD', AGE), tonumber(redis.call('GET', BYTES) or '0')}
