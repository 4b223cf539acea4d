//! request-info: a request-mode runnable. Reads request fields through `request_get_field`,
//! sets two response headers, logs one info line and answers a compact JSON summary:
//! `{"method":..,"url":..,"username":..,"header":..,"state":..,"query":..}`.
//! Outside a request job the first field read fails → RunErr 500.

#[path = "../common/guest.rs"]
mod guest;

use guest::{log, req, resp};

fn run(_input: Vec<u8>) -> Result<Vec<u8>, (i32, String)> {
    let read = |what: &str, value: Result<String, String>| value.map_err(|error| (500, format!("{}: {}", what, error)));
    let fields = [
        ("method", read("method", req::method())?),
        ("url", read("url", req::url())?),
        ("username", read("body field username", req::body_field("username"))?),
        ("header", read("header x-test", req::header("x-test"))?),
        ("state", read("state hello", req::state("hello"))?),
        ("query", read("query message", req::query_param("message"))?),
    ];

    resp::set_header("Content-Type", "application/json");
    resp::set_header("X-Reactr", &fields[2].1);
    log::info(&format!("request-info: {} {}", fields[0].1, fields[1].1));

    let members: Vec<String> = fields.iter().map(|(key, value)| format!("{}:{}", json_string(key), json_string(value))).collect();
    Ok(format!("{{{}}}", members.join(",")).into_bytes())
}

/// `text` as a JSON string literal. Non-ASCII passes through as UTF-8, which JSON allows.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
