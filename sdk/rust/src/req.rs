//! The HTTP request attached to a request job (a CoordinatedRequest).
//!
//! The Reactr-shaped getters (`method()`, `header(..)`, ...) answer an empty value when the host
//! fails, as Reactr's SDK does; each has a `try_` twin that reports the failure as a [`HostErr`]
//! instead (for example when the job carries no request). A missing header, path parameter or
//! query parameter is not a failure: it reads as an empty string.

use crate::ffi;
use crate::runnable::HostErr;
use crate::util;

const META: i32 = 0;
const BODY: i32 = 1;
const HEADER: i32 = 2;
const PARAMS: i32 = 3;
const STATE: i32 = 4;
const QUERY: i32 = 5;

fn get_field(field_type: i32, key: &str) -> Result<Vec<u8>, HostErr> {
    let key = key.as_bytes();
    ffi::result(unsafe { ffi::request_get_field(field_type, key.as_ptr(), ffi::len(key), ffi::ident()) })
}

fn get_text(field_type: i32, key: &str) -> Result<String, HostErr> {
    get_field(field_type, key).map(util::to_string)
}

fn set_field(field_type: i32, key: &str, value: &[u8]) -> Result<(), HostErr> {
    let key = key.as_bytes();
    let size = unsafe {
        ffi::request_set_field(field_type, key.as_ptr(), ffi::len(key), value.as_ptr(), ffi::len(value), ffi::ident())
    };
    // The host leaves an (empty) pending result even on success; collecting it frees the slot.
    ffi::result(size).map(|_| ())
}

/// The request method, e.g. `GET`.
pub fn try_method() -> Result<String, HostErr> {
    get_text(META, "method")
}
/// The request URI: path and query, e.g. `/hello/world?message=whatsup`.
pub fn try_url() -> Result<String, HostErr> {
    get_text(META, "url")
}
/// The request's id.
pub fn try_id() -> Result<String, HostErr> {
    get_text(META, "id")
}
/// The raw request body.
pub fn try_body_raw() -> Result<Vec<u8>, HostErr> {
    get_field(META, "body")
}
/// A string member of the JSON request body; fails when it is missing, not a string, or the body
/// is not a JSON object (an empty body reads as an empty string).
pub fn try_body_field(key: &str) -> Result<String, HostErr> {
    get_text(BODY, key)
}
/// A request header (names are matched case-insensitively).
pub fn try_header(name: &str) -> Result<String, HostErr> {
    get_text(HEADER, &name.to_ascii_lowercase())
}
/// A path parameter set by the router.
pub fn try_url_param(name: &str) -> Result<String, HostErr> {
    get_text(PARAMS, name)
}
/// A request state value, as bytes.
pub fn try_state_raw(key: &str) -> Result<Vec<u8>, HostErr> {
    get_field(STATE, key)
}
/// A request state value, as text.
pub fn try_state(key: &str) -> Result<String, HostErr> {
    get_text(STATE, key)
}
/// The first value of a query parameter of the URL.
pub fn try_query_param(name: &str) -> Result<String, HostErr> {
    get_text(QUERY, name)
}

/// [`try_method`], empty on failure.
pub fn method() -> String {
    try_method().unwrap_or_default()
}
/// [`try_url`], empty on failure.
pub fn url() -> String {
    try_url().unwrap_or_default()
}
/// [`try_id`], empty on failure.
pub fn id() -> String {
    try_id().unwrap_or_default()
}
/// [`try_body_raw`], empty on failure.
pub fn body_raw() -> Vec<u8> {
    try_body_raw().unwrap_or_default()
}
/// [`try_body_field`], empty on failure.
pub fn body_field(key: &str) -> String {
    try_body_field(key).unwrap_or_default()
}
/// [`try_header`], empty on failure.
pub fn header(name: &str) -> String {
    try_header(name).unwrap_or_default()
}
/// [`try_url_param`], empty on failure.
pub fn url_param(name: &str) -> String {
    try_url_param(name).unwrap_or_default()
}
/// [`try_state`], `None` on failure or when the value is empty (a missing key reads as empty).
pub fn state(key: &str) -> Option<String> {
    try_state(key).ok().filter(|value| !value.is_empty())
}
/// [`try_state_raw`], `None` on failure or when the value is empty.
pub fn state_raw(key: &str) -> Option<Vec<u8>> {
    try_state_raw(key).ok().filter(|value| !value.is_empty())
}
/// [`try_query_param`], empty on failure.
pub fn query_param(name: &str) -> String {
    try_query_param(name).unwrap_or_default()
}

/// Replaces the request method seen by later readers (and by the caller).
pub fn set_method(value: &str) -> Result<(), HostErr> {
    set_field(META, "method", value.as_bytes())
}
/// Replaces the request URI.
pub fn set_url(value: &str) -> Result<(), HostErr> {
    set_field(META, "url", value.as_bytes())
}
/// Replaces the raw request body (Reactr's `set_body` set a JSON member named `body` instead).
pub fn set_body(value: &[u8]) -> Result<(), HostErr> {
    set_field(META, "body", value)
}
/// Sets a string member of the JSON request body.
pub fn set_body_field(key: &str, value: &str) -> Result<(), HostErr> {
    set_field(BODY, key, value.as_bytes())
}
/// Sets a request header.
pub fn set_header(name: &str, value: &str) -> Result<(), HostErr> {
    set_field(HEADER, name, value.as_bytes())
}
/// Sets a path parameter.
pub fn set_url_param(name: &str, value: &str) -> Result<(), HostErr> {
    set_field(PARAMS, name, value.as_bytes())
}
/// Sets a request state value.
pub fn set_state(key: &str, value: &[u8]) -> Result<(), HostErr> {
    set_field(STATE, key, value)
}
