//! return-err: every job fails with RunErr {code 400, "job failed"}
//! (the host reports `{"code":400,"message":"job failed"}`).

use suborbital::runnable::{RunErr, Runnable};

struct ReturnErr;

impl Runnable for ReturnErr {
    fn run(&self, _input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        Err(RunErr::new(400, "job failed"))
    }
}

suborbital::register_runnable!(ReturnErr);
