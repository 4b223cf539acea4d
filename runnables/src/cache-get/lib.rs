//! cache-get: answers the host cache value under `name`; a miss or a disabled cache fails with
//! code 404 and the host's error text (e.g. `key not found`, `capability is not enabled`).

#[path = "../common/guest.rs"]
mod guest;

use guest::cache;

fn run(_input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> {
    cache::get("name").map_err(|message| (404, message))
}
