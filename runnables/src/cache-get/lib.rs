//! cache-get: answers the host cache value under `name`; a miss or a disabled cache fails with
//! code 404 and the host's error text (e.g. `key not found`, `capability is not enabled`).

use suborbital::cache;
use suborbital::runnable::{RunErr, Runnable};

struct CacheGet;

impl Runnable for CacheGet {
    fn run(&self, _input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        cache::get("name").map_err(|error| RunErr::new(404, error.message))
    }
}

suborbital::register_runnable!(CacheGet);
