// The host's cache (one namespace shared by every runnable of the host).

import { cache_get, cache_set } from "./env";
import { collect, ident, ptr, Result, UNKNOWN_HOST_ERROR, utf8 } from "./ffi";

/** The value under `key`; a miss is an error (`key not found` on the memory cache). */
export function cacheGet(key: string): Result {
  const name = utf8(key);
  return collect(cache_get(ptr(name), name.byteLength, ident()));
}

/** Stores `value` under `key` for `ttl` seconds (0 or less: no expiry). Success: an empty value. */
export function cacheSet(key: string, value: ArrayBuffer, ttl: i32 = 0): Result {
  const name = utf8(key);
  const code = cache_set(ptr(name), name.byteLength, ptr(value), value.byteLength, ttl, ident());
  if (code == 0) return Result.ok(new ArrayBuffer(0));
  if (code == -2) return Result.err("cache set failed: the cache is unavailable or not granted to this runnable");
  return Result.err(UNKNOWN_HOST_ERROR);
}
