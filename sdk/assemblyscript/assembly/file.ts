// Files of the host's static folder (the `static` capability).

import { get_static_file } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

/** The bytes of the static file `name` (relative to the host's static folder). */
export function getStaticFile(name: string): Result {
  const path = utf8(name);
  return collect(get_static_file(ptr(path), path.byteLength, ident()));
}
