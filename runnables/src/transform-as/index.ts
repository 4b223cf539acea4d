// transform-as: the AssemblyScript twin of runnables/src/transform. Exact contract:
// runnables/src/README.md, "Contract: transform". Body field `name` (required), header
// `x-greeting` (default `hello`), path parameter `id`, query parameter `lang` →
// `{"message":"<greeting>, <name>!","name":"<NAME>","method":..,"id":..,"lang":..}`,
// with `Content-Type: application/json`.
import {
  jsonObject, reqGetBodyField, reqGetHeader, reqGetMethod, reqGetQueryParam, reqGetURLParam,
  respContentType, returnError, toBytes, useRunnable,
} from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

// ASCII a-z upper-cased; every other character unchanged.
function asciiUpper(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += String.fromCharCode(c >= 0x61 && c <= 0x7a ? c - 0x20 : c);
  }
  return out;
}

function run(input: ArrayBuffer): ArrayBuffer {
  const method = reqGetMethod();
  if (method.isErr) return returnError(400, "transform needs a request job");
  const name = reqGetBodyField("name").text();
  if (name.length == 0) return returnError(400, 'body field "name" is required');
  let greeting = reqGetHeader("x-greeting").text();
  if (greeting.length == 0) greeting = "hello";

  const answer = jsonObject(
    ["message", "name", "method", "id", "lang"],
    [greeting + ", " + name + "!", asciiUpper(name), method.text(), reqGetURLParam("id").text(), reqGetQueryParam("lang").text()],
  );
  respContentType("application/json");
  return toBytes(answer);
}

useRunnable(run);
