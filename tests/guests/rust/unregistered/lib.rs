//! unregistered: implements Runnable but never registers it (no `_start`), so every job must
//! fail with Reactr's `RunErr(-1, "No runnable set")`.

use suborbital::runnable::{RunErr, Runnable};

pub struct Unregistered;

impl Runnable for Unregistered {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        Ok(input)
    }
}
