//! GraphQL queries through the host (the `graphql` capability, under the HTTP rules).

use crate::ffi;
use crate::runnable::HostErr;

/// POSTs `{"query": query}` to `endpoint`; answers the JSON `{"data":...}`. A non-2xx status or a
/// GraphQL error in the response is a [`HostErr`].
pub fn query(endpoint: &str, query: &str) -> Result<Vec<u8>, HostErr> {
    let (endpoint, query) = (endpoint.as_bytes(), query.as_bytes());
    ffi::result(unsafe {
        ffi::graphql_query(endpoint.as_ptr(), ffi::len(endpoint), query.as_ptr(), ffi::len(query), ffi::ident())
    })
}
