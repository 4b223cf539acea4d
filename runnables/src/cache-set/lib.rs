//! cache-set: stores the input in the host cache under `name` (no expiry) and answers `hello`.
//! Pairs with cache-get, which reads the same key.

use suborbital::cache;
use suborbital::runnable::{RunErr, Runnable};

struct CacheSet;

impl Runnable for CacheSet {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        match cache::set("name", input, 0) {
            Ok(()) => Ok(b"hello".to_vec()),
            Err(_) => Err(RunErr::new(500, "cache set failed")),
        }
    }
}

suborbital::register_runnable!(CacheSet);
