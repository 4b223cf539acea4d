// sdk-probe: drives every function of the AssemblyScript SDK, one operation per job.
// Input: lines; the first names the operation, the others are its arguments (see `run`).
// A host error is passed on as the job's error with the Result's code (1 for host failures).
import {
  cacheGet, cacheSet, dbDelete, dbInsert, dbSelect, dbUpdate, getStaticFile, graphQLQuery, httpRequest,
  jsonString, logDebug, logErr, logInfo, logWarn, Method, QueryArg, reqGetBody, reqGetBodyField, reqGetHeader,
  reqGetID, reqGetMethod, reqGetQueryParam, reqGetState, reqGetURL, reqGetURLParam, reqSetBody, reqSetBodyField,
  reqSetHeader, reqSetMethod, reqSetState, reqSetURL, reqSetURLParam, respContentType, respSetHeader, Result,
  returnError, runJob, toBytes, toString, useRunnable,
} from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

function answer(result: Result): ArrayBuffer {
  if (result.isErr) return returnError(result.code, result.errorText());
  return result.value;
}

function shown(result: Result): string {
  return result.ok ? result.text() : "ERR " + result.errorText();
}

function requestFields(): ArrayBuffer {
  const keys = ["method", "url", "id", "body_raw", "body_field", "header", "url_param", "state", "query_param", "added"];
  const values = [
    shown(reqGetMethod()), shown(reqGetURL()), shown(reqGetID()), shown(reqGetBody()), shown(reqGetBodyField("name")),
    shown(reqGetHeader("X-Test")), shown(reqGetURLParam("id")), shown(reqGetState("hello")),
    shown(reqGetQueryParam("q")), shown(reqGetHeader("added")),
  ];
  let out = "{";
  for (let i = 0; i < keys.length; i++) out += (i > 0 ? "," : "") + jsonString(keys[i]) + ":" + jsonString(values[i]);
  return toBytes(out + "}");
}

function setRequestFields(): ArrayBuffer {
  const sets = [
    reqSetMethod("PUT"), reqSetURL("/changed?q=new"), reqSetBody(toBytes('{"name":"x"}')),
    reqSetBodyField("name", "field"), reqSetHeader("added", "yes"), reqSetURLParam("id", "7"),
    reqSetState("hello", toBytes("changed")),
  ];
  for (let i = 0; i < sets.length; i++) if (sets[i].isErr) return answer(sets[i]);
  return requestFields();
}

const METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];

// http METHOD URL [BODY [Name=Value ...]]
function http(args: string[]): ArrayBuffer {
  const method = METHODS.indexOf(args[1]);
  const body = args.length > 3 && args[3].length > 0 ? toBytes(args[3]) : null;
  let headers: Map<string, string> | null = null;
  for (let i = 4; i < args.length; i++) {
    if (headers === null) headers = new Map<string, string>();
    const eq = args[i].indexOf("=");
    headers.set(args[i].substring(0, eq), args[i].substring(eq + 1));
  }
  return answer(httpRequest(method < 0 ? Method.GET : method, args[2], body, headers));
}

// db KIND NAME [VALUE ...]
function db(args: string[]): ArrayBuffer {
  const vars = new Array<QueryArg>();
  for (let i = 3; i < args.length; i++) vars.push(new QueryArg("$" + (i - 2).toString(), args[i]));
  const kind = args[1];
  if (kind == "insert") return answer(dbInsert(args[2], vars));
  if (kind == "select") return answer(dbSelect(args[2], vars));
  if (kind == "update") return answer(dbUpdate(args[2], vars));
  return answer(dbDelete(args[2], vars));
}

// The text after the first `count` lines.
function after(text: string, count: i32): string {
  let at = 0;
  for (let i = 0; i < count; i++) {
    const next = text.indexOf("\n", at);
    if (next < 0) return "";
    at = next + 1;
  }
  return text.substring(at);
}

function run(input: ArrayBuffer): ArrayBuffer {
  const text = toString(input);
  const args = text.split("\n");
  const op = args[0];
  if (op == "echo") return toBytes(after(text, 1));
  if (op == "fail") return returnError(I32.parseInt(args[1]), after(text, 2));
  if (op == "fail-then-result") {
    returnError(409, "the error wins");
    return toBytes("ignored");
  }
  if (op == "throw") throw new Error(args[1]);
  if (op == "unwrap") return cacheGet("no such key, surely").unwrap();
  if (op == "json") return toBytes(jsonString(after(text, 1)));
  if (op == "utf8") {
    const bytes = new Uint8Array(3); // "ok" and a byte that is never valid UTF-8
    bytes[0] = 0x6f;
    bytes[1] = 0x6b;
    bytes[2] = 0xff;
    return toBytes(toString(bytes.buffer));
  }
  if (op == "req") return requestFields();
  if (op == "req-set") return setRequestFields();
  if (op == "resp") {
    respSetHeader(args[1], args[2]);
    respContentType("text/x-probe");
    return toBytes("headers set");
  }
  if (op == "log") {
    logDebug("debug " + args[1]);
    logInfo("info " + args[1]);
    logWarn("warn " + args[1]);
    logErr("error " + args[1]);
    return toBytes("logged");
  }
  if (op == "cache-set") {
    const stored = cacheSet(args[1], toBytes(args[2]), I32.parseInt(args[3]));
    return stored.ok ? toBytes("stored") : answer(stored);
  }
  if (op == "cache-get") return answer(cacheGet(args[1]));
  if (op == "job") return answer(runJob(args[1], toBytes(after(text, 2))));
  if (op == "http") return http(args);
  if (op == "graphql") return answer(graphQLQuery(args[1], after(text, 2)));
  if (op == "static") return answer(getStaticFile(args[1]));
  if (op == "db") return db(args);
  if (op == "garbage") {
    // Allocates about KIB kibibytes that are garbage once the job ends.
    const kib = I32.parseInt(args[1]);
    let total = 0;
    for (let i = 0; i < kib; i++) total += new ArrayBuffer(1024).byteLength;
    return toBytes(total.toString());
  }
  return returnError(400, 'unknown operation "' + op + '"');
}

useRunnable(run);
