//! hello-echo: answers `hello ` followed by the input, like Reactr's own hello-echo test module.
//! Written exactly as Reactr's Rust template writes a runnable (its own `_start` calling
//! `use_runnable`), to show such sources build unchanged against this SDK. Built for wasm32-wasi
//! so it imports WASI functions, as Rust runnables built with Reactr's toolchain do; the host
//! must link `wasi_snapshot_preview1` for it to instantiate.
//! build-target: wasm32-wasi

use suborbital::runnable::*;

struct HelloEcho {}

impl Runnable for HelloEcho {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let mut output = b"hello ".to_vec();
        output.extend_from_slice(&input);
        Ok(output)
    }
}

// initialize the runner, do not edit below //
static RUNNABLE: &HelloEcho = &HelloEcho {};

#[no_mangle]
pub extern "C" fn _start() {
    use_runnable(RUNNABLE);
}
