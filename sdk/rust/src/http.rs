//! Outbound HTTP through the host (the `http` capability, under the host's rules).
//!
//! Every function answers the response body of a 2xx response; anything else is a [`HostErr`]
//! whose message is the host's text, e.g. `404: <body>` or `capability is not enabled`.
//! Headers travel inside the URL string (`url::Name:Value::Name:Value`, the ABI's encoding), so a
//! URL cannot contain `::` and header names and values cannot contain `:`; such calls fail
//! before reaching the host.

use std::collections::BTreeMap;

use crate::ffi;
use crate::runnable::HostErr;

/// Header names and values, as in Reactr's SDK.
pub type Headers<'a> = Option<BTreeMap<&'a str, &'a str>>;

#[derive(Clone, Copy)]
enum Method {
    Get = 0,
    Head = 1,
    Options = 2,
    Post = 3,
    Put = 4,
    Patch = 5,
    Delete = 6,
}

/// `url` with `headers` appended in the ABI's encoding.
fn encode(url: &str, headers: &Headers<'_>) -> Result<String, HostErr> {
    if url.contains("::") {
        return Err(HostErr::new(format!("URL {:?} contains \"::\", which the host reads as a header separator", url)));
    }
    let mut encoded = String::from(url);
    for (name, value) in headers.iter().flatten() {
        if name.is_empty() || name.contains(':') || value.contains(':') {
            return Err(HostErr::new(format!(
                "header {:?}: {:?} cannot be sent: names must be non-empty and neither may contain ':'",
                name, value
            )));
        }
        encoded.push_str("::");
        encoded.push_str(name);
        encoded.push(':');
        encoded.push_str(value);
    }
    Ok(encoded)
}

fn fetch(method: Method, url: &str, body: Option<Vec<u8>>, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    let url = encode(url, &headers)?;
    let body = body.unwrap_or_default();
    let (url, body_bytes) = (url.as_bytes(), body.as_slice());
    ffi::result(unsafe {
        ffi::fetch_url(
            method as i32,
            url.as_ptr(),
            ffi::len(url),
            body_bytes.as_ptr(),
            ffi::len(body_bytes),
            ffi::ident(),
        )
    })
}

pub fn get(url: &str, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Get, url, None, headers)
}
pub fn head(url: &str, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Head, url, None, headers)
}
pub fn options(url: &str, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Options, url, None, headers)
}
pub fn post(url: &str, body: Option<Vec<u8>>, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Post, url, body, headers)
}
pub fn put(url: &str, body: Option<Vec<u8>>, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Put, url, body, headers)
}
pub fn patch(url: &str, body: Option<Vec<u8>>, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Patch, url, body, headers)
}
pub fn delete(url: &str, headers: Headers<'_>) -> Result<Vec<u8>, HostErr> {
    fetch(Method::Delete, url, None, headers)
}
