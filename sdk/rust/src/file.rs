//! Static files the host serves to runnables (the `static` capability).

use crate::ffi;
use crate::runnable::HostErr;

/// The contents of static file `name` (a path relative to the host's static folder).
pub fn get_static(name: &str) -> Result<Vec<u8>, HostErr> {
    let name = name.as_bytes();
    ffi::result(unsafe { ffi::get_static_file(name.as_ptr(), ffi::len(name), ffi::ident()) })
}
