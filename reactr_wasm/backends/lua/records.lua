-- records.lua: the result store's layout and helpers; the prelude of every script.
--
-- ARGV[1] is the namespace NS. Keys (scripts build them from NS: one Redis server, not Redis Cluster):
--   NS:r:ID     hash of one record: d = its msgpack form without key and fingerprint ('' when it
--               is large: then it is the string NS:d:ID),
--               n = bytes it counts for, k = Idempotency-Key, f = fingerprint,
--               t = finished time (once finished), s/o = started time and node (while a node runs it)
--   NS:age      zset ID -> order of arrival: the oldest is evicted first
--   NS:fin      zset ID -> finished time: sweep drops those past the TTL
--   NS:bytes    the sum of every kept record's n
--   NS:seq      the last order of arrival given
--   NS:k:KEY    the ID an Idempotency-Key is bound to
--   NS:done     channel: 'i' .. ID when a kept record finished, 'r' .. packed record when it was not kept,
--               'x' .. msgpack list of the IDs of finished records a script dropped or replaced (one
--               message per script call; nodes keep the records they finished, and forget these)
--   NS:p:RUNNABLE:ENTRY  the payload of a queued job when large (the job queue's: cluster/queue.py)
--   NS:in:...   a value over the link's inline bound, staged by a node in the same write as the
--               script that moves it into place (RENAME: its bytes never cross into Lua); it expires
--               on its own when no script took it
-- Times are the nodes' wall clocks in seconds (the store's clock), passed in ARGV.

local NS = ARGV[1]
local AGE, FIN, BYTES, SEQ, DONE = NS .. ':age', NS .. ':fin', NS .. ':bytes', NS .. ':seq', NS .. ':done'

local function record_key(id) return NS .. ':r:' .. id end
local function key_key(key) return NS .. ':k:' .. key end
local function data_key(id) return NS .. ':d:' .. id end
local function payload_key(runnable, entry) return NS .. ':p:' .. runnable .. ':' .. entry end

-- Refuse the call before it writes anything when a value staged for it is missing (its SET was
-- refused, or it expired): `stages` are the names passed in ARGV ('' for a value passed inline).
local function require_staged(stages)
  for _, stage in ipairs(stages) do
    if stage ~= '' and redis.call('EXISTS', stage) == 0 then
      error({err = 'staged value ' .. stage .. ' is missing'})
    end
  end
end

-- Delete the values staged at these names ('' for none) that the call does not take.
local function discard(...)
  for _, stage in ipairs({...}) do
    if stage ~= '' then redis.call('DEL', stage) end
  end
end

-- Acknowledge and delete entry `entry` of job `id` in RUNNABLE's stream, with its cancel mark and its
-- payload kept apart, if any (the job queue's: cluster/queue.py).
local function remove_entry(group, runnable, entry, id)
  local stream = NS .. ':q:' .. runnable
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('DEL', NS .. ':x:' .. id, payload_key(runnable, entry))
end

-- Move the value staged at `stage` to `key`, for good.
local function place(stage, key)
  redis.call('RENAME', stage, key)
  redis.call('PERSIST', key)
end

-- The whole d of record `id` whose hash field d is `d` (a large one is read from NS:d:ID, into Lua:
-- for the rare replies that carry a record back, not for the writes of every job).
local function record_data(id, d)
  if d == '' then return redis.call('GET', data_key(id)) end
  return d
end

-- The IDs of finished records this script call dropped or replaced: published once at its end.
local DROPPED = {}
local function publish_dropped()
  if #DROPPED > 0 then redis.call('PUBLISH', DONE, 'x' .. cmsgpack.pack(DROPPED)) end
end

-- Forget a record, its place in the indexes, its bytes and its key binding. Whether it was kept.
local function drop(id)
  local r = record_key(id)
  local kept = redis.call('HMGET', r, 'n', 'k', 't')
  redis.call('ZREM', AGE, id)
  redis.call('ZREM', FIN, id)
  if not kept[1] then return false end
  if kept[3] then DROPPED[#DROPPED + 1] = id end
  redis.call('DEL', r, data_key(id))
  redis.call('DECRBY', BYTES, kept[1])
  if kept[2] and redis.call('GET', key_key(kept[2])) == id then redis.call('DEL', key_key(kept[2])) end
  return true
end

-- Drop the oldest records while over either bound, never `keep` (just written: its client is about to read it).
local function evict(keep, max_results, max_bytes)
  while true do
    local count = redis.call('ZCARD', AGE)
    if count <= 1 then return end
    if count <= max_results and tonumber(redis.call('GET', BYTES) or '0') <= max_bytes then return end
    local oldest = redis.call('ZRANGE', AGE, 0, 1)
    if oldest[1] ~= keep then drop(oldest[1]) else drop(oldest[2]) end
  end
end

-- The record Idempotency-Key `key` is bound to, as {id, d, k, f}; nil when none is kept.
-- An expired one is dropped here, releasing the key.
local function bound(key, now, ttl)
  local id = redis.call('GET', key_key(key))
  if not id then return nil end
  local kept = redis.call('HMGET', record_key(id), 'd', 'k', 'f', 't')
  if not kept[1] then
    redis.call('DEL', key_key(key))
    return nil
  end
  if kept[4] and now - tonumber(kept[4]) >= ttl then
    drop(id)
    return nil
  end
  return {id, record_data(id, kept[1]), kept[2], kept[3]}
end

-- Keep a record (replacing one with its id in its place), bind its key, then evict.
-- `key`, `fp` and `finished` are '' when absent; `nbase` is its size without the key; `d` is ''
-- when staged at `stage` (else `stage` is '').
local function put(id, d, stage, nbase, key, fp, finished, max_results, max_bytes)
  local r = record_key(id)
  local old = redis.call('HMGET', r, 'n', 't')
  if old[2] then DROPPED[#DROPPED + 1] = id end
  old = old[1]
  if old then
    redis.call('DEL', r, data_key(id))
    redis.call('DECRBY', BYTES, old)
    redis.call('ZREM', FIN, id)
  else
    redis.call('ZADD', AGE, redis.call('INCR', SEQ), id)
  end
  local n = tonumber(nbase) + #key
  if stage ~= '' then place(stage, data_key(id)) end
  local fields = {'d', d, 'n', n}
  if key ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 'k', key
    redis.call('SET', key_key(key), id)
  end
  if fp ~= '' then fields[#fields + 1], fields[#fields + 2] = 'f', fp end
  if finished ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 't', finished
    redis.call('ZADD', FIN, finished, id)
  end
  redis.call('HSET', r, unpack(fields))
  redis.call('INCRBY', BYTES, n)
  evict(id, max_results, max_bytes)
end

-- Store the finished state of a kept record and tell the waiters (NS:done); `d` and `stage` as
-- put's. Returns
--   {1, k, f}   stored (k, f: the kept key and fingerprint, which carry over)
--   {0}         not kept (deleted, expired, evicted): nothing stored, the record itself published
--   {2, d, k, f} kept finished already: the first outcome stands (a second run after a reclaim)
local function finish(id, d, stage, nbase, key, fp, finished, max_results, max_bytes)
  local r = record_key(id)
  local kept = redis.call('HMGET', r, 'n', 'k', 'f', 't')
  if not kept[1] then
    if stage ~= '' then d = redis.call('GET', stage) or '' end
    discard(stage)
    redis.call('PUBLISH', DONE, 'r' .. d)
    return {0}
  end
  if kept[4] then
    discard(stage)
    redis.call('PUBLISH', DONE, 'i' .. id)
    return {2, record_data(id, redis.call('HGET', r, 'd')), kept[2], kept[3]}
  end
  if stage ~= '' then place(stage, data_key(id)) end  -- (a stale one, if any, goes with the record)
  local fields = {'d', d}
  if finished ~= '' then
    fields[3], fields[4] = 't', finished
    redis.call('ZADD', FIN, finished, id)
  end
  if key ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 'k', key
    if kept[2] ~= key then redis.call('SET', key_key(key), id) end
    if fp ~= '' then fields[#fields + 1], fields[#fields + 2] = 'f', fp end
  else
    key = kept[2] or ''
  end
  local n = tonumber(nbase) + #key
  fields[#fields + 1], fields[#fields + 2] = 'n', n
  redis.call('HSET', r, unpack(fields))
  if finished ~= '' then redis.call('HDEL', r, 's', 'o') end
  redis.call('INCRBY', BYTES, n - tonumber(kept[1]))
  evict(id, max_results, max_bytes)
  redis.call('PUBLISH', DONE, 'i' .. id)
  return {1, key, fp ~= '' and fp or kept[3]}
end
