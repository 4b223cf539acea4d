// Headers of the response to a request job.

import { resp_set_header } from "./env";
import { ident, ptr, utf8 } from "./ffi";

/** Sets (or replaces) a response header of the current request job; ignored outside one. */
export function respSetHeader(name: string, value: string): void {
  const key = utf8(name);
  const val = utf8(value);
  resp_set_header(ptr(key), key.byteLength, ptr(val), val.byteLength, ident());
}

/** Sets the response's Content-Type. */
export function respContentType(value: string): void {
  respSetHeader("Content-Type", value);
}
