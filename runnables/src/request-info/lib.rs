//! request-info: a request-mode runnable. Reads request fields through `request_get_field`,
//! sets two response headers, logs one info line and answers a compact JSON summary:
//! `{"method":..,"url":..,"username":..,"header":..,"state":..,"query":..}`.
//! Outside a request job the first field read fails → RunErr 500.

use suborbital::runnable::{HostErr, RunErr, Runnable};
use suborbital::{log, req, resp, util};

struct RequestInfo;

/// A field read, failing as RunErr 500 `<what>: <host error>`.
fn read(what: &str, value: Result<String, HostErr>) -> Result<String, RunErr> {
    value.map_err(|error| RunErr::new(500, format!("{}: {}", what, error.message)))
}

impl Runnable for RequestInfo {
    fn run(&self, _input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let method = read("method", req::try_method())?;
        let url = read("url", req::try_url())?;
        let username = read("body field username", req::try_body_field("username"))?;
        let header = read("header x-test", req::try_header("x-test"))?;
        let state = read("state hello", req::try_state("hello"))?;
        let query = read("query message", req::try_query_param("message"))?;

        resp::content_type("application/json");
        resp::set_header("X-Reactr", &username);
        log::info(&format!("request-info: {} {}", method, url));

        let summary = util::json_object(&[
            ("method", &method),
            ("url", &url),
            ("username", &username),
            ("header", &header),
            ("state", &state),
            ("query", &query),
        ]);
        Ok(summary.into_bytes())
    }
}

suborbital::register_runnable!(RequestInfo);
