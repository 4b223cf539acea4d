//! Headers of the response to a request job. Outside a request job these calls do nothing
//! (the host function reports no outcome to the guest).

use crate::ffi;

/// Sets response header `name` to `value` (replacing an earlier value).
pub fn set_header(name: &str, value: &str) {
    let (name, value) = (name.as_bytes(), value.as_bytes());
    unsafe { ffi::resp_set_header(name.as_ptr(), ffi::len(name), value.as_ptr(), ffi::len(value), ffi::ident()) }
}

/// Sets the response's `Content-Type`.
pub fn content_type(value: &str) {
    set_header("Content-Type", value)
}
