//! fetch: GETs a URL through the host's `fetch_url` and answers the response body.
//! Exact contract (shared with the AssemblyScript twin `fetch-as`): runnables/src/README.md,
//! "Contract: fetch". The URL is the query parameter `url` of a request job, else the input;
//! host errors come back as RunErr 502 carrying the host's text.

use suborbital::runnable::{RunErr, Runnable};
use suborbital::{http, req, util};

struct Fetch;

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Runnable for Fetch {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        // Outside a request job the query read fails and the input is the URL.
        let from_query = req::query_param("url");
        let url = if from_query.is_empty() { util::to_string(input) } else { from_query };
        let url = url.trim_matches(is_space);
        if url.is_empty() {
            return Err(RunErr::new(400, "no URL given: send it as the body or as ?url="));
        }
        if url.contains("::") {
            return Err(RunErr::new(400, "URL must not contain \"::\""));
        }
        http::get(url, None).map_err(|error| RunErr::new(502, error.message))
    }
}

suborbital::register_runnable!(Fetch);
