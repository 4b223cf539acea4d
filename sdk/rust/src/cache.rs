//! The host's cache (one namespace shared by every runnable of the host).

use crate::ffi;
use crate::runnable::HostErr;

/// Stores `value` under `key` for `ttl` seconds (0 or less: no expiry).
pub fn set(key: &str, value: impl AsRef<[u8]>, ttl: i32) -> Result<(), HostErr> {
    let (key, value) = (key.as_bytes(), value.as_ref());
    match unsafe { ffi::cache_set(key.as_ptr(), ffi::len(key), value.as_ptr(), ffi::len(value), ttl, ffi::ident()) } {
        0 => Ok(()),
        -2 => Err(HostErr::new("cache set failed: the cache is unavailable or not granted to this runnable")),
        _ => Err(HostErr::new(ffi::UNKNOWN_HOST_ERROR)),
    }
}

/// The value under `key`; a miss is an error (`key not found` on the memory cache).
pub fn get(key: &str) -> Result<Vec<u8>, HostErr> {
    let key = key.as_bytes();
    ffi::result(unsafe { ffi::cache_get(key.as_ptr(), ffi::len(key), ffi::ident()) })
}
