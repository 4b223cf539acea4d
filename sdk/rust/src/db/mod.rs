//! Named database queries the host prepared from its config (the `db` capability).
//!
//! Each function runs the query `name` with `args` bound positionally (`$1`, `$2`, ...; the
//! names are for readability only) and answers the host's JSON: `{"lastInsertID":..,
//! "rowsAffected":..}` for insert/update/delete, an array of row objects for select.

pub mod query;

pub use query::QueryArg;

use crate::ffi;
use crate::runnable::HostErr;

const INSERT: i32 = 0;
const SELECT: i32 = 1;
const UPDATE: i32 = 2;
const DELETE: i32 = 3;

fn exec(query_type: i32, name: &str, args: Vec<QueryArg>) -> Result<Vec<u8>, HostErr> {
    for arg in &args {
        let (arg_name, value) = (arg.name.as_bytes(), arg.value.as_bytes());
        let code = unsafe {
            ffi::add_ffi_var(arg_name.as_ptr(), ffi::len(arg_name), value.as_ptr(), ffi::len(value), ffi::ident())
        };
        if code != 0 {
            return Err(HostErr::new(format!("query {}: the host refused variable {:?}", name, arg.name)));
        }
    }
    let name = name.as_bytes();
    ffi::result(unsafe { ffi::db_exec(query_type, name.as_ptr(), ffi::len(name), ffi::ident()) })
}

pub fn insert(name: &str, args: Vec<QueryArg>) -> Result<Vec<u8>, HostErr> {
    exec(INSERT, name, args)
}
pub fn select(name: &str, args: Vec<QueryArg>) -> Result<Vec<u8>, HostErr> {
    exec(SELECT, name, args)
}
pub fn update(name: &str, args: Vec<QueryArg>) -> Result<Vec<u8>, HostErr> {
    exec(UPDATE, name, args)
}
pub fn delete(name: &str, args: Vec<QueryArg>) -> Result<Vec<u8>, HostErr> {
    exec(DELETE, name, args)
}
