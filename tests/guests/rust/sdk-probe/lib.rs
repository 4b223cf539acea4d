//! sdk-probe: calls one SDK function per job so tests/test_sdk_rust.py can drive every part of
//! the `suborbital` crate through a real host. Input: lines; the first names the operation, the
//! others are its arguments. Host errors pass through `?`, so they arrive as RunErr code 1.

use std::collections::BTreeMap;

use suborbital::db::query::QueryArg;
use suborbital::runnable::{HostErr, RunErr, Runnable};
use suborbital::{cache, db, file, graphql, http, job, log, req, resp, util};

struct Probe;

fn field(value: Result<String, HostErr>) -> String {
    value.unwrap_or_else(|error| format!("ERR {}", error.message))
}

fn request_fields() -> String {
    util::json_object(&[
        ("method", &field(req::try_method())),
        ("url", &field(req::try_url())),
        ("id", &field(req::try_id())),
        ("body_raw", &field(req::try_body_raw().map(util::to_string))),
        ("body_field", &field(req::try_body_field("name"))),
        ("header", &field(req::try_header("X-Test"))),
        ("url_param", &field(req::try_url_param("id"))),
        ("state", &field(req::try_state("hello"))),
        ("query_param", &field(req::try_query_param("q"))),
        ("added", &field(req::try_header("x-added"))),
        // Reactr-shaped getters: empty (or None) instead of an error.
        ("plain_method", &req::method()),
        ("plain_state", &format!("{:?}", req::state("hello"))),
    ])
}

fn request_set() -> Result<String, RunErr> {
    req::set_header("x-added", "yes")?;
    req::set_method("PUT")?;
    req::set_url("/changed?q=new")?;
    req::set_url_param("id", "7")?;
    req::set_state("hello", b"changed")?;
    req::set_body(b"{\"name\":\"raw\"}")?;
    req::set_body_field("name", "field")?;
    Ok(request_fields())
}

fn http_call(args: &[&str]) -> Result<Vec<u8>, HostErr> {
    let (method, url, body) = (args[0], args[1], args.get(2).copied().unwrap_or(""));
    let mut headers = BTreeMap::new();
    for header in args.iter().skip(3) {
        let (name, value) = header.split_once('=').unwrap_or((header, ""));
        headers.insert(name, value);
    }
    let headers = if headers.is_empty() { None } else { Some(headers) };
    let body = Some(body.as_bytes().to_vec());
    match method {
        "GET" => http::get(url, headers),
        "HEAD" => http::head(url, headers),
        "OPTIONS" => http::options(url, headers),
        "POST" => http::post(url, body, headers),
        "PUT" => http::put(url, body, headers),
        "PATCH" => http::patch(url, body, headers),
        "DELETE" => http::delete(url, headers),
        _ => Err(HostErr::new(format!("no HTTP method {}", method))),
    }
}

fn db_call(args: &[&str]) -> Result<Vec<u8>, HostErr> {
    let vars = args[2..].iter().enumerate().map(|(i, value)| QueryArg::new(format!("v{}", i), *value)).collect();
    match args[0] {
        "insert" => db::insert(args[1], vars),
        "select" => db::select(args[1], vars),
        "update" => db::update(args[1], vars),
        "delete" => db::delete(args[1], vars),
        other => Err(HostErr::new(format!("no query type {}", other))),
    }
}

impl Runnable for Probe {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let text = util::to_string(input);
        let mut lines = text.split('\n');
        let op = lines.next().unwrap_or("");
        let args: Vec<&str> = lines.collect();
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        match op {
            "echo" => Ok(util::to_vec(args.join("\n"))),
            "fail" => Err(RunErr::new(arg(0).parse().unwrap_or(0), arg(1))),
            "req" => Ok(request_fields().into_bytes()),
            "req-set" => Ok(request_set()?.into_bytes()),
            "resp" => {
                resp::set_header(arg(0), arg(1));
                resp::content_type("text/x-probe");
                Ok(b"headers set".to_vec())
            }
            "log" => {
                log::debug(&format!("debug {}", arg(0)));
                log::info(&format!("info {}", arg(0)));
                log::warn(&format!("warn {}", arg(0)));
                log::error(&format!("error {}", arg(0)));
                Ok(b"logged".to_vec())
            }
            "cache-set" => {
                cache::set(arg(0), arg(1), arg(2).parse().unwrap_or(0))?;
                Ok(b"stored".to_vec())
            }
            "cache-get" => Ok(cache::get(arg(0))?),
            "http" => Ok(http_call(&args)?),
            "graphql" => Ok(graphql::query(arg(0), arg(1))?),
            "static" => Ok(file::get_static(arg(0))?),
            "db" => Ok(db_call(&args)?),
            "job" => job::run(arg(0), args.get(1..).unwrap_or_default().join("\n")),
            "utf8" => Ok(util::to_string(vec![b'o', b'k', 0xff]).into_bytes()),
            "json" => Ok(util::json_string(arg(0)).into_bytes()),
            "panic" => panic!("probe panicked"),
            _ => Err(RunErr::new(400, format!("unknown operation {:?}", op))),
        }
    }
}

suborbital::register_runnable!(Probe);
