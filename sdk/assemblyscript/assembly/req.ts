// The request of a request job (a CoordinatedRequest): read and change its fields.
// Outside a request job every call fails (`unknown error returned from host`).

import { request_get_field, request_set_field } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

// Field types of request_get_field / request_set_field.
const META: i32 = 0;
const BODY: i32 = 1;
const HEADER: i32 = 2;
const PARAMS: i32 = 3;
const STATE: i32 = 4;
const QUERY: i32 = 5;

function get(fieldType: i32, key: string): Result {
  const name = utf8(key);
  return collect(request_get_field(fieldType, ptr(name), name.byteLength, ident()));
}

function set(fieldType: i32, key: string, value: ArrayBuffer): Result {
  const name = utf8(key);
  return collect(request_set_field(fieldType, ptr(name), name.byteLength, ptr(value), value.byteLength, ident()));
}

/** The HTTP method, e.g. `GET`. */
export function reqGetMethod(): Result {
  return get(META, "method");
}

/** The request URI: path and query, e.g. `/hello/world?message=whatsup`. */
export function reqGetURL(): Result {
  return get(META, "url");
}

/** The request's id. */
export function reqGetID(): Result {
  return get(META, "id");
}

/** The raw request body. */
export function reqGetBody(): Result {
  return get(META, "body");
}

/** A string member of the JSON-object body; missing, not a string or a body that is not JSON: error. */
export function reqGetBodyField(key: string): Result {
  return get(BODY, key);
}

/** A request header (names are looked up lowercased); missing: empty value. */
export function reqGetHeader(name: string): Result {
  return get(HEADER, name.toLowerCase());
}

/** A path parameter of the route; missing: empty value. */
export function reqGetURLParam(name: string): Result {
  return get(PARAMS, name);
}

/** A state value; missing: empty value. */
export function reqGetState(key: string): Result {
  return get(STATE, key);
}

/** The first value of a query parameter of the URL; missing: empty value. */
export function reqGetQueryParam(name: string): Result {
  return get(QUERY, name);
}

/** Replaces the method. */
export function reqSetMethod(value: string): Result {
  return set(META, "method", utf8(value));
}

/** Replaces the URL. */
export function reqSetURL(value: string): Result {
  return set(META, "url", utf8(value));
}

/** Replaces the raw body. */
export function reqSetBody(value: ArrayBuffer): Result {
  return set(META, "body", value);
}

/** Sets a string member of the JSON-object body. */
export function reqSetBodyField(key: string, value: string): Result {
  return set(BODY, key, utf8(value));
}

/** Sets a request header (as given: use lowercase names to read it back). */
export function reqSetHeader(name: string, value: string): Result {
  return set(HEADER, name, utf8(value));
}

/** Sets a path parameter. */
export function reqSetURLParam(name: string, value: string): Result {
  return set(PARAMS, name, utf8(value));
}

/** Sets a state value. */
export function reqSetState(key: string, value: ArrayBuffer): Result {
  return set(STATE, key, value);
}
