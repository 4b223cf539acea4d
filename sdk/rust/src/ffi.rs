//! The `env` imports and the FFI-result protocol. Every ABI value is an i32; the last argument of
//! every host call is the ident the host passed to `run_e`.

use std::cell::Cell;

use crate::runnable::HostErr;

#[link(wasm_import_module = "env")]
extern "C" {
    fn return_result(ptr: *const u8, len: i32, ident: i32);
    fn return_error(code: i32, ptr: *const u8, len: i32, ident: i32);
    fn return_abort(msg_ptr: *const u8, msg_len: i32, file_ptr: *const u8, file_len: i32, line: i32, col: i32, ident: i32);
    fn get_ffi_result(ptr: *mut u8, ident: i32) -> i32;
    pub(crate) fn add_ffi_var(name_ptr: *const u8, name_len: i32, val_ptr: *const u8, val_len: i32, ident: i32) -> i32;
    pub(crate) fn fetch_url(method: i32, url_ptr: *const u8, url_len: i32, body_ptr: *const u8, body_len: i32, ident: i32) -> i32;
    pub(crate) fn graphql_query(endpoint_ptr: *const u8, endpoint_len: i32, query_ptr: *const u8, query_len: i32, ident: i32) -> i32;
    pub(crate) fn cache_set(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32, ttl: i32, ident: i32) -> i32;
    pub(crate) fn cache_get(key_ptr: *const u8, key_len: i32, ident: i32) -> i32;
    pub(crate) fn log_msg(ptr: *const u8, len: i32, level: i32, ident: i32);
    pub(crate) fn request_get_field(field_type: i32, key_ptr: *const u8, key_len: i32, ident: i32) -> i32;
    pub(crate) fn request_set_field(field_type: i32, key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32, ident: i32) -> i32;
    pub(crate) fn resp_set_header(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32, ident: i32);
    pub(crate) fn get_static_file(name_ptr: *const u8, name_len: i32, ident: i32) -> i32;
    pub(crate) fn db_exec(query_type: i32, name_ptr: *const u8, name_len: i32, ident: i32) -> i32;
    pub(crate) fn run_job(name_ptr: *const u8, name_len: i32, data_ptr: *const u8, data_len: i32, ident: i32) -> i32;
}

/// What every Reactr SDK says when the host failed without an error text.
pub(crate) const UNKNOWN_HOST_ERROR: &str = "unknown error returned from host";

thread_local! {
    static IDENT: Cell<i32> = Cell::new(0);
}

pub(crate) fn set_ident(ident: i32) {
    IDENT.with(|cell| cell.set(ident));
}

/// The ident of the job being run (0 outside `run_e`, which every host call refuses).
pub(crate) fn ident() -> i32 {
    IDENT.with(Cell::get)
}

/// A buffer's length as the ABI carries it. wasm32 buffers never exceed i32::MAX in practice;
/// a larger one is clamped rather than wrapped to a negative length.
pub(crate) fn len(bytes: &[u8]) -> i32 {
    i32::try_from(bytes.len()).unwrap_or(i32::MAX)
}

pub(crate) fn send_result(output: &[u8]) {
    unsafe { return_result(output.as_ptr(), len(output), ident()) }
}

pub(crate) fn send_error(code: i32, message: &str) {
    unsafe { return_error(code, message.as_ptr(), len(message.as_bytes()), ident()) }
}

/// Reports a panic (message and source location) before the module traps; the host fails the
/// job with `runnable abort: <message>; file: <file>, line: <n>, col: <n>` and logs it.
pub(crate) fn send_abort(message: &str, file: &str, line: u32, col: u32) {
    let (line, col) = (i32::try_from(line).unwrap_or(i32::MAX), i32::try_from(col).unwrap_or(i32::MAX));
    unsafe {
        return_abort(message.as_ptr(), len(message.as_bytes()), file.as_ptr(), len(file.as_bytes()), line, col, ident())
    }
}

/// Collects what a data-producing host call announced with `size`: `>= 0` is that many bytes of
/// value, `< 0` an error text of `-size` bytes, and `-1` a failure with nothing pending (so
/// `get_ffi_result` is not called). A fixed code like `-2` finds nothing pending either.
pub(crate) fn result(size: i32) -> Result<Vec<u8>, HostErr> {
    if size == -1 {
        return Err(HostErr::new(UNKNOWN_HOST_ERROR));
    }
    // Zero-filled: the host only promises to write |size| bytes.
    let mut buffer = vec![0u8; size.unsigned_abs() as usize];
    if unsafe { get_ffi_result(buffer.as_mut_ptr(), ident()) } != 0 {
        return Err(HostErr::new(UNKNOWN_HOST_ERROR));
    }
    if size < 0 {
        Err(HostErr::new(String::from_utf8_lossy(&buffer).into_owned()))
    } else {
        Ok(buffer)
    }
}
