//! transform: a request-mode runnable that turns request fields into a JSON answer.
//! Exact contract (shared with the AssemblyScript twin `transform-as`): runnables/src/README.md,
//! "Contract: transform". In short: body field `name` (required), header `x-greeting` (default
//! `hello`), path parameter `id`, query parameter `lang` →
//! `{"message":"<greeting>, <name>!","name":"<NAME>","method":..,"id":..,"lang":..}`,
//! with `Content-Type: application/json`.

use suborbital::runnable::{RunErr, Runnable};
use suborbital::{req, resp, util};

struct Transform;

impl Runnable for Transform {
    fn run(&self, _input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let method = req::try_method().map_err(|_| RunErr::new(400, "transform needs a request job"))?;
        let name = req::try_body_field("name")
            .ok()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| RunErr::new(400, "body field \"name\" is required"))?;
        let greeting = Some(req::header("x-greeting")).filter(|greeting| !greeting.is_empty());
        let greeting = greeting.unwrap_or_else(|| "hello".to_string());

        let answer = util::json_object(&[
            ("message", &format!("{}, {}!", greeting, name)),
            ("name", &name.to_ascii_uppercase()),
            ("method", &method),
            ("id", &req::url_param("id")),
            ("lang", &req::query_param("lang")),
        ]);
        resp::content_type("application/json");
        Ok(answer.into_bytes())
    }
}

suborbital::register_runnable!(Transform);
