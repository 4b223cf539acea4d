//! A tiny stand-in for Reactr's Rust guest SDK (the `suborbital` crate), shared by every Rust
//! example in `runnables/src/`. No crates.io here, so this file carries the ABI instead.
//!
//! A runnable pulls it in with
//!
//! ```ignore
//! #[path = "../common/guest.rs"]
//! mod guest;
//! fn run(input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> { ... }
//! ```
//!
//! and gets the exports a Reactr host expects: `allocate`, `deallocate`, `run_e`, `_start`
//! (`memory` comes from the linker). Host functions are imported from module `env`; only the
//! ones a runnable actually calls survive linking, so each .wasm imports what it uses, just as
//! modules built with the real SDK do.

// Every runnable uses a different subset of this layer.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};

/// Raw imports. Signatures follow the Reactr host table: every value is an i32 and the
/// last argument is always the ident the host handed to `run_e`.
mod env {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn return_result(ptr: *const u8, len: i32, ident: i32);
        pub fn return_error(code: i32, ptr: *const u8, len: i32, ident: i32);
        pub fn get_ffi_result(ptr: *mut u8, ident: i32) -> i32;
        pub fn log_msg(ptr: *const u8, len: i32, level: i32, ident: i32);
        pub fn request_get_field(field_type: i32, key_ptr: *const u8, key_len: i32, ident: i32) -> i32;
        pub fn resp_set_header(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32, ident: i32);
        pub fn cache_set(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32, ttl: i32, ident: i32) -> i32;
        pub fn cache_get(key_ptr: *const u8, key_len: i32, ident: i32) -> i32;
    }
}

// Wasm guests are single-threaded; atomics just avoid `static mut` and compile to plain
// loads and stores on wasm32.
static IDENT: AtomicI32 = AtomicI32::new(0);
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// The ident of the job being run: valid only inside `run_e`.
pub fn ident() -> i32 {
    IDENT.load(Relaxed)
}

fn len_of(bytes: &[u8]) -> i32 {
    // Buffers handed to the host are bounded by the 4 GiB wasm32 address space, and the
    // ABI carries lengths as i32 like every other value.
    bytes.len() as i32
}

// ---- exports ---------------------------------------------------------------------------

/// Registration point, like the `_start` of Reactr's Rust template that calls
/// `use_runnable`. A host that skips `_start` gets Reactr's "No runnable set" error,
/// which makes that host bug visible instead of silently working.
#[no_mangle]
pub extern "C" fn _start() {
    REGISTERED.store(true, Relaxed);
}

/// A buffer of `size` bytes for the host (the job input). Backed by a forgotten Vec so
/// `deallocate` can rebuild and drop it.
#[no_mangle]
pub extern "C" fn allocate(size: i32) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(size.max(0) as usize);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Frees a buffer from `allocate`; `size` must be the size it was allocated with.
///
/// # Safety
/// `ptr` must come from `allocate(size)` and not have been freed yet.
#[no_mangle]
pub unsafe extern "C" fn deallocate(ptr: *mut u8, size: i32) {
    drop(Vec::from_raw_parts(ptr, 0, size.max(0) as usize));
}

/// Runs one job.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer the host filled, normally one from `allocate`.
#[no_mangle]
pub unsafe extern "C" fn run_e(ptr: *const u8, len: i32, ident: i32) {
    IDENT.store(ident, Relaxed);
    // Copy the input instead of taking ownership of the buffer: the host calls `deallocate`
    // on it after run_e returns, and freeing it here as well (what Reactr's SDK does) would
    // be a double free.
    let input = if len > 0 { std::slice::from_raw_parts(ptr, len as usize).to_vec() } else { Vec::new() };
    let outcome = if REGISTERED.load(Relaxed) { crate::run(input) } else { Err((-1, "No runnable set".to_string())) };
    match outcome {
        Ok(output) => env::return_result(output.as_ptr(), len_of(&output), ident),
        Err((code, message)) => env::return_error(code, message.as_ptr(), len_of(message.as_bytes()), ident),
    }
}

// ---- FFI results -----------------------------------------------------------------------

/// The message every Reactr SDK uses when the host reports failure without details.
pub const UNKNOWN_HOST_ERROR: &str = "unknown error returned from host";

/// Collects the pending result announced by a data-producing host call that returned `size`:
/// `>= 0` means that many bytes of value, `< 0` an error message of `-size` bytes, and `-1`
/// a failure with nothing pending (so `get_ffi_result` must not be called for it).
pub fn ffi_result(size: i32) -> Result<Vec<u8>, String> {
    if size == -1 {
        return Err(UNKNOWN_HOST_ERROR.to_string());
    }
    // Zero-filled rather than uninitialised: the host only promises to write |size| bytes.
    let mut buffer = vec![0u8; size.unsigned_abs() as usize];
    if unsafe { env::get_ffi_result(buffer.as_mut_ptr(), ident()) } != 0 {
        return Err(UNKNOWN_HOST_ERROR.to_string());
    }
    if size < 0 {
        Err(String::from_utf8_lossy(&buffer).into_owned())
    } else {
        Ok(buffer)
    }
}

// ---- host capabilities -----------------------------------------------------------------

pub mod log {
    fn log(level: i32, message: &str) {
        unsafe { super::env::log_msg(message.as_ptr(), super::len_of(message.as_bytes()), level, super::ident()) }
    }
    pub fn error(message: &str) {
        log(1, message)
    }
    pub fn warn(message: &str) {
        log(2, message)
    }
    pub fn info(message: &str) {
        log(3, message)
    }
    pub fn debug(message: &str) {
        log(4, message)
    }
}

/// Fields of the request attached to a request-mode job (all fail outside one).
pub mod req {
    use super::{ffi_result, ident, len_of};

    const META: i32 = 0;
    const BODY: i32 = 1;
    const HEADER: i32 = 2;
    const PARAMS: i32 = 3;
    const STATE: i32 = 4;
    const QUERY: i32 = 5;

    fn field(field_type: i32, key: &str) -> Result<Vec<u8>, String> {
        let size = unsafe { super::env::request_get_field(field_type, key.as_ptr(), len_of(key.as_bytes()), ident()) };
        ffi_result(size)
    }

    fn text(field_type: i32, key: &str) -> Result<String, String> {
        field(field_type, key).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn method() -> Result<String, String> {
        text(META, "method")
    }
    pub fn url() -> Result<String, String> {
        text(META, "url")
    }
    pub fn id() -> Result<String, String> {
        text(META, "id")
    }
    pub fn body_raw() -> Result<Vec<u8>, String> {
        field(META, "body")
    }
    /// A string field of the JSON request body.
    pub fn body_field(key: &str) -> Result<String, String> {
        text(BODY, key)
    }
    pub fn header(name: &str) -> Result<String, String> {
        text(HEADER, name)
    }
    pub fn url_param(name: &str) -> Result<String, String> {
        text(PARAMS, name)
    }
    pub fn state(key: &str) -> Result<String, String> {
        text(STATE, key)
    }
    pub fn query_param(name: &str) -> Result<String, String> {
        text(QUERY, name)
    }
}

pub mod resp {
    pub fn set_header(name: &str, value: &str) {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        unsafe {
            super::env::resp_set_header(
                name.as_ptr(),
                super::len_of(name),
                value.as_ptr(),
                super::len_of(value),
                super::ident(),
            )
        }
    }
}

pub mod cache {
    use super::{ident, len_of};

    /// Stores `value` under `key` for `ttl` seconds (0 = forever); `Err` carries the host's
    /// code (-2 cache error or capability off, -1 unknown ident).
    pub fn set(key: &str, value: &[u8], ttl: i32) -> Result<(), i32> {
        let key = key.as_bytes();
        match unsafe { super::env::cache_set(key.as_ptr(), len_of(key), value.as_ptr(), len_of(value), ttl, ident()) } {
            0 => Ok(()),
            code => Err(code),
        }
    }

    /// The value under `key`; a miss is an error (`key not found` on the memory cache).
    pub fn get(key: &str) -> Result<Vec<u8>, String> {
        let key = key.as_bytes();
        super::ffi_result(unsafe { super::env::cache_get(key.as_ptr(), len_of(key), ident()) })
    }
}
