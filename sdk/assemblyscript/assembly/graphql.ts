// GraphQL queries through the host (the `graphql` capability).

import { graphql_query } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

/** POSTs `{"query": query}` to `endpoint`; the value is the response's `{"data":...}` JSON. */
export function graphQLQuery(endpoint: string, query: string): Result {
  const target = utf8(endpoint);
  const text = utf8(query);
  return collect(graphql_query(ptr(target), target.byteLength, ptr(text), text.byteLength, ident()));
}
