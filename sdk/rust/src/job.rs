//! Chaining: run another job of this host and wait for its outcome (`env.run_job`, a reactr-wasm
//! extension that Reactr itself does not have).

use crate::ffi;
use crate::runnable::{RunErr, HOST_ERROR_CODE};

/// Runs job `name` with `data` and answers its output. A runnable's error comes back as that
/// runnable's own [`RunErr`] (same code and message), so `?` passes it on unchanged; other
/// failures (`failed to getWorker for jobType "<name>"`, `job timeout`, the chain depth limit)
/// are a `RunErr` with code [`HOST_ERROR_CODE`] and the host's text.
pub fn run(name: &str, data: impl AsRef<[u8]>) -> Result<Vec<u8>, RunErr> {
    let (name, data) = (name.as_bytes(), data.as_ref());
    let size = unsafe { ffi::run_job(name.as_ptr(), ffi::len(name), data.as_ptr(), ffi::len(data), ffi::ident()) };
    ffi::result(size).map_err(|error| {
        parse_run_err(&error.message).unwrap_or_else(|| RunErr::new(HOST_ERROR_CODE, error.message))
    })
}

/// Reads a RunErr's JSON form, `{"code":<int>,"message":"<text>"}` (either key may be absent).
fn parse_run_err(text: &str) -> Option<RunErr> {
    let mut parser = Parser { rest: text.trim() };
    parser.eat("{")?;
    let (mut code, mut message) = (0, String::new());
    let mut first = true;
    while parser.eat("}").is_none() {
        if !first {
            parser.eat(",")?;
        }
        first = false;
        match parser.string()?.as_str() {
            "code" => {
                parser.eat(":")?;
                code = parser.integer()?;
            }
            "message" => {
                parser.eat(":")?;
                message = parser.string()?;
            }
            _ => return None,
        }
    }
    if parser.rest.is_empty() {
        Some(RunErr::new(code, message))
    } else {
        None
    }
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn eat(&mut self, token: &str) -> Option<()> {
        self.rest = self.rest.trim_start().strip_prefix(token)?;
        Some(())
    }

    fn integer(&mut self) -> Option<i32> {
        self.rest = self.rest.trim_start();
        let end = self.rest.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')));
        let end = end.map_or(self.rest.len(), |(i, _)| i);
        let value = self.rest[..end].parse().ok()?;
        self.rest = &self.rest[end..];
        Some(value)
    }

    fn string(&mut self) -> Option<String> {
        self.eat("\"")?;
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Some(out);
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let high = hex_unit(&mut chars)?;
                        let code = if (0xd800..0xdc00).contains(&high) {
                            if chars.next()?.1 != '\\' || chars.next()?.1 != 'u' {
                                return None;
                            }
                            let low = hex_unit(&mut chars)?;
                            0x10000 + ((high - 0xd800) << 10) + (low.checked_sub(0xdc00)? & 0x3ff)
                        } else {
                            high
                        };
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other), // `\"`, `\\`, `\/`
                },
                c => out.push(c),
            }
        }
        None
    }
}

/// The four hex digits of a `\u` escape.
fn hex_unit(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let hex: String = (0..4).map(|_| chars.next().map(|(_, c)| c)).collect::<Option<_>>()?;
    u32::from_str_radix(&hex, 16).ok()
}
