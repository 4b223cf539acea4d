//! return-err: every job fails with RunErr {code 400, "job failed"}
//! (the host reports `{"code":400,"message":"job failed"}`).

#[path = "../common/guest.rs"]
mod guest;

fn run(_input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> {
    Err((400, "job failed".to_string()))
}
