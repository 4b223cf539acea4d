// Outbound HTTP through the host (the `http` capability, under the host's rules).
//
// Every function answers the body of a 2xx response; anything else is an error whose text is
// the host's, e.g. `404: <body>` or `capability is not enabled`. Headers travel inside the URL
// string (`url::Name:Value`, the ABI's encoding), so a URL cannot contain `::` and header names
// and values cannot contain `:`; such calls fail before reaching the host.

import { fetch_url } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

export namespace Method {
  export const GET: i32 = 0;
  export const HEAD: i32 = 1;
  export const OPTIONS: i32 = 2;
  export const POST: i32 = 3;
  export const PUT: i32 = 4;
  export const PATCH: i32 = 5;
  export const DELETE: i32 = 6;
}

/** Sends a request with any method of `Method`; `body` and `headers` may be null. */
export function httpRequest(
  method: i32, url: string, body: ArrayBuffer | null, headers: Map<string, string> | null,
): Result {
  if (url.includes("::")) {
    return Result.err('URL "' + url + '" contains "::", which the host reads as a header separator');
  }
  let encoded = url;
  if (headers !== null) {
    const names = headers.keys();
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const value = headers.get(name);
      if (name.length == 0 || name.includes(":") || value.includes(":")) {
        return Result.err(
          'header "' + name + '": "' + value + '" cannot be sent: names must be non-empty and neither may contain \':\'',
        );
      }
      encoded += "::" + name + ":" + value;
    }
  }
  const target = utf8(encoded);
  const payload = body === null ? new ArrayBuffer(0) : body;
  return collect(fetch_url(method, ptr(target), target.byteLength, ptr(payload), payload.byteLength, ident()));
}

export function httpGet(url: string, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.GET, url, null, headers);
}

export function httpHead(url: string, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.HEAD, url, null, headers);
}

export function httpOptions(url: string, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.OPTIONS, url, null, headers);
}

export function httpPost(url: string, body: ArrayBuffer | null, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.POST, url, body, headers);
}

export function httpPut(url: string, body: ArrayBuffer | null, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.PUT, url, body, headers);
}

export function httpPatch(url: string, body: ArrayBuffer | null, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.PATCH, url, body, headers);
}

export function httpDelete(url: string, headers: Map<string, string> | null = null): Result {
  return httpRequest(Method.DELETE, url, null, headers);
}
