//! `suborbital`: the guest side of a reactr-wasm runnable, shaped like Suborbital Reactr's Rust
//! SDK so that Reactr users' sources build against it.
//!
//! ```ignore
//! use suborbital::runnable::*;
//!
//! struct Hello;
//!
//! impl Runnable for Hello {
//!     fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
//!         Ok([b"hello ".as_slice(), &input].concat())
//!     }
//! }
//!
//! suborbital::register_runnable!(Hello);
//! ```
//!
//! The crate provides the exports a Reactr host calls (`allocate`, `deallocate`, `run_e`); the
//! runnable provides `_start`, either through [`register_runnable!`] or, as in Reactr's template,
//! with its own `#[no_mangle] pub extern fn _start() { use_runnable(RUNNABLE); }`.
//!
//! Host calls never panic: failures come back as [`runnable::HostErr`] (or [`runnable::RunErr`]
//! for [`job::run`]). Only the `env` functions a runnable really calls end up as imports of its
//! module.

pub mod cache;
pub mod db;
mod ffi;
pub mod file;
pub mod graphql;
pub mod http;
pub mod job;
pub mod log;
pub mod req;
pub mod resp;
pub mod runnable;
pub mod util;

/// Registers a runnable by exporting the `_start` function the host calls once per instance.
///
/// Takes the name of a type without fields (`struct Echo;` or `struct Echo {}`), or any constant
/// expression of a `Sync` type implementing [`runnable::Runnable`].
///
/// ```ignore
/// struct Echo;
/// impl suborbital::runnable::Runnable for Echo { /* ... */ }
/// suborbital::register_runnable!(Echo);
/// ```
#[macro_export]
macro_rules! register_runnable {
    ($runnable:ident) => {
        $crate::register_runnable!($runnable {});
    };
    ($runnable:expr) => {
        #[no_mangle]
        pub extern "C" fn _start() {
            static RUNNABLE: &(dyn $crate::runnable::Runnable + Sync) = &$runnable;
            $crate::runnable::use_runnable(RUNNABLE);
        }
    };
}
