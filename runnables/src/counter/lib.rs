//! counter: increments the cache counter named by the input and answers the new count.
//! Exact contract (shared with the AssemblyScript twin `counter-as`): runnables/src/README.md,
//! "Contract: counter". Key `counter:<name>` (empty input → `default`), value decimal text,
//! a miss counts as 0, no expiry. Get-then-set is not atomic.

use suborbital::cache;
use suborbital::runnable::{RunErr, Runnable};

struct Counter;

impl Runnable for Counter {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let name = String::from_utf8(input).map_err(|_| RunErr::new(400, "counter name must be UTF-8"))?;
        let name = if name.is_empty() { "default".to_string() } else { name };
        let key = format!("counter:{}", name);

        let count = match cache::get(&key) {
            Err(_) => 0, // a miss, or no cache: counting starts again from zero
            Ok(stored) => std::str::from_utf8(&stored)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| RunErr::new(500, format!("counter \"{}\" holds a non-number", name)))?,
        };
        let count = count.checked_add(1).ok_or_else(|| RunErr::new(500, format!("counter \"{}\" overflowed", name)))?;
        let text = count.to_string();
        cache::set(&key, text.as_bytes(), 0).map_err(|_| RunErr::new(500, "cache set failed"))?;
        Ok(text.into_bytes())
    }
}

suborbital::register_runnable!(Counter);
