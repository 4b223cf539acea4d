//! Log lines through the host's logger (tagged with the job's ident and request id).

use crate::ffi;

fn log(level: i32, message: &str) {
    unsafe { ffi::log_msg(message.as_ptr(), ffi::len(message.as_bytes()), level, ffi::ident()) }
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
