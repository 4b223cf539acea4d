// fetch-as: the AssemblyScript twin of runnables/src/fetch. Exact contract:
// runnables/src/README.md, "Contract: fetch". The URL is the query parameter `url` of a request
// job, else the input; host errors come back as RunErr 502 carrying the host's text.
import { httpGet, reqGetQueryParam, returnError, toString, useRunnable } from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0d || c == 0x0a;
}

function run(input: ArrayBuffer): ArrayBuffer {
  // Outside a request job the query read fails (an empty value) and the input is the URL.
  let url = reqGetQueryParam("url").text();
  if (url.length == 0) url = toString(input);
  let start = 0;
  let end = url.length;
  while (start < end && isSpace(url.charCodeAt(start))) start++;
  while (end > start && isSpace(url.charCodeAt(end - 1))) end--;
  url = url.substring(start, end);
  if (url.length == 0) return returnError(400, "no URL given: send it as the body or as ?url=");
  if (url.includes("::")) return returnError(400, 'URL must not contain "::"');
  const response = httpGet(url);
  if (response.isErr) return returnError(502, response.errorText());
  return response.value;
}

useRunnable(run);
