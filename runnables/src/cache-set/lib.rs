//! cache-set: stores the input in the host cache under `name` (no expiry) and answers `hello`.
//! Pairs with cache-get, which reads the same key.

#[path = "../common/guest.rs"]
mod guest;

use guest::cache;

fn run(input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> {
    // -2 (cache error / capability off) is the documented failure; -1 (bad ident) cannot
    // happen for a well-behaved host but is reported the same way rather than ignored.
    match cache::set("name", &input, 0) {
        Ok(()) => Ok(b"hello".to_vec()),
        Err(_) => Err((500, "cache set failed".to_string())),
    }
}
