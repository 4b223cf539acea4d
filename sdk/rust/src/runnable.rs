//! The runnable itself: the [`Runnable`] trait, its error types, registration and the exports
//! the host calls (`allocate`, `deallocate`, `run_e`).

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::fmt;

use crate::ffi;

/// A job handler: gets the job's input bytes, answers output bytes or a [`RunErr`].
pub trait Runnable {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr>;
}

/// The runnable's own error: the host reports it as `{"code":<code>,"message":"<message>"}`,
/// and the HTTP API answers with status `code` when it is 400–599 (500 otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunErr {
    pub code: i32,
    pub message: String,
}

impl RunErr {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RunErr { code, message: message.into() }
    }
}

impl fmt::Display for RunErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RunErr {}

/// A host call failed; `message` is the host's error text (for example
/// `capability is not enabled`), or `unknown error returned from host` when it gave none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostErr {
    pub message: String,
}

impl HostErr {
    pub fn new(message: impl Into<String>) -> Self {
        HostErr { message: message.into() }
    }
}

impl fmt::Display for HostErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostErr {}

/// The code a [`HostErr`] gets when `?` turns it into a [`RunErr`] (Reactr's examples use 1
/// for failed host calls).
pub const HOST_ERROR_CODE: i32 = 1;

impl From<HostErr> for RunErr {
    fn from(error: HostErr) -> Self {
        RunErr::new(HOST_ERROR_CODE, error.message)
    }
}

thread_local! {
    // A wasm guest has one thread; thread_local is a safe way to hold per-instance state.
    static RUNNABLE: Cell<Option<&'static dyn Runnable>> = Cell::new(None);
}

/// Makes `runnable` the handler of every job this instance runs. Call it from `_start` (see
/// [`crate::register_runnable!`]); a module that never calls it fails every job with
/// `RunErr(-1, "No runnable set")`, as Reactr's SDK does.
pub fn use_runnable(runnable: &'static dyn Runnable) {
    RUNNABLE.with(|slot| slot.set(Some(runnable)));
    std::panic::set_hook(Box::new(report_panic));
}

/// The panic hook: a `panic!` inside a job reaches the caller and the host's log as the job's
/// error, message and location included, instead of a bare `unreachable` trap.
fn report_panic(info: &std::panic::PanicInfo<'_>) {
    let payload = info.payload();
    let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => text,
        (None, Some(text)) => text.as_str(),
        (None, None) => "panic with a non-text payload",
    };
    let (file, line, col) = info.location().map_or(("<unknown>", 0, 0), |at| (at.file(), at.line(), at.column()));
    ffi::send_abort(message, file, line, col);
}

// ---- exports -----------------------------------------------------------------------------

fn layout(size: i32) -> Option<Layout> {
    match usize::try_from(size) {
        Ok(size) if size > 0 => Layout::array::<u8>(size).ok(),
        _ => None,
    }
}

/// A buffer of `size` bytes for the host (the job input). Size 0 (or negative) gives a dangling,
/// never-dereferenced pointer; running out of memory traps.
#[no_mangle]
pub extern "C" fn allocate(size: i32) -> *mut u8 {
    match layout(size) {
        None => std::ptr::NonNull::<u8>::dangling().as_ptr(),
        Some(layout) => {
            let ptr = unsafe { alloc::alloc(layout) };
            if ptr.is_null() {
                alloc::handle_alloc_error(layout);
            }
            ptr
        }
    }
}

/// Frees a buffer from `allocate`, given the same size.
///
/// # Safety
/// `ptr` must come from `allocate(size)` and not have been freed yet.
#[no_mangle]
pub unsafe extern "C" fn deallocate(ptr: *mut u8, size: i32) {
    if let Some(layout) = layout(size) {
        alloc::dealloc(ptr, layout);
    }
}

/// Runs one job: copies the input, calls the registered runnable and hands its outcome to the
/// host with `return_result` or `return_error`.
///
/// # Safety
/// `ptr..ptr+len` must be readable guest memory, normally a buffer from `allocate`.
#[no_mangle]
pub unsafe extern "C" fn run_e(ptr: *const u8, len: i32, ident: i32) {
    ffi::set_ident(ident);
    // Copied, not adopted: the host deallocates the input buffer after run_e returns (Reactr's
    // SDK freed it here too, a double free).
    let input = match usize::try_from(len) {
        Ok(len) if len > 0 => std::slice::from_raw_parts(ptr, len).to_vec(),
        _ => Vec::new(),
    };
    let outcome = match RUNNABLE.with(Cell::get) {
        Some(runnable) => runnable.run(input),
        None => Err(RunErr::new(-1, "No runnable set")),
    };
    match outcome {
        Ok(output) => ffi::send_result(&output),
        Err(error) => ffi::send_error(error.code, &error.message),
    }
}
