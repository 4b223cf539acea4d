//! hello-echo: answers `hello ` followed by the input, like Reactr's own hello-echo test module.
//! Built for wasm32-wasi so it imports WASI functions, as Rust runnables built with Reactr's
//! toolchain do; the host must link `wasi_snapshot_preview1` for it to instantiate.
//! build-target: wasm32-wasi

#[path = "../common/guest.rs"]
mod guest;

fn run(input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> {
    let mut output = b"hello ".to_vec();
    output.extend_from_slice(&input);
    Ok(output)
}
