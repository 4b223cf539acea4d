// The host functions of Reactr's `env` ABI (plus reactr-wasm's run_job). Every value is an i32;
// the last argument of every call is the ident the host passed to run_e. A module imports only
// the functions its code actually reaches.

@external("env", "return_result")
export declare function return_result(ptr: usize, len: i32, ident: i32): void;

@external("env", "return_error")
export declare function return_error(code: i32, ptr: usize, len: i32, ident: i32): void;

@external("env", "return_abort")
export declare function return_abort(
  msgPtr: usize, msgLen: i32, filePtr: usize, fileLen: i32, line: u32, col: u32, ident: i32,
): void;

@external("env", "get_ffi_result")
export declare function get_ffi_result(ptr: usize, ident: i32): i32;

@external("env", "add_ffi_var")
export declare function add_ffi_var(namePtr: usize, nameLen: i32, valPtr: usize, valLen: i32, ident: i32): i32;

@external("env", "fetch_url")
export declare function fetch_url(
  method: i32, urlPtr: usize, urlLen: i32, bodyPtr: usize, bodyLen: i32, ident: i32,
): i32;

@external("env", "graphql_query")
export declare function graphql_query(endpointPtr: usize, endpointLen: i32, queryPtr: usize, queryLen: i32, ident: i32): i32;

@external("env", "cache_set")
export declare function cache_set(keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32, ttl: i32, ident: i32): i32;

@external("env", "cache_get")
export declare function cache_get(keyPtr: usize, keyLen: i32, ident: i32): i32;

@external("env", "log_msg")
export declare function log_msg(ptr: usize, len: i32, level: i32, ident: i32): void;

@external("env", "request_get_field")
export declare function request_get_field(fieldType: i32, keyPtr: usize, keyLen: i32, ident: i32): i32;

@external("env", "request_set_field")
export declare function request_set_field(
  fieldType: i32, keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32, ident: i32,
): i32;

@external("env", "resp_set_header")
export declare function resp_set_header(keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32, ident: i32): void;

@external("env", "get_static_file")
export declare function get_static_file(namePtr: usize, nameLen: i32, ident: i32): i32;

@external("env", "db_exec")
export declare function db_exec(queryType: i32, namePtr: usize, nameLen: i32, ident: i32): i32;

@external("env", "run_job")
export declare function run_job(namePtr: usize, nameLen: i32, dataPtr: usize, dataLen: i32, ident: i32): i32;
