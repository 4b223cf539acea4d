// Named queries of the host's database (the `db` capability). The host prepares the queries
// from its config; a call names one and passes its variables in order ($1, $2, ...).

import { add_ffi_var, db_exec } from "./env";
import { collect, ident, ptr, Result, UNKNOWN_HOST_ERROR, utf8 } from "./ffi";

/** One query variable; the host uses the values positionally and ignores the names. */
export class QueryArg {
  constructor(public name: string, public value: string) {}
}

function exec(queryType: i32, name: string, args: QueryArg[]): Result {
  for (let i = 0; i < args.length; i++) {
    const key = utf8(args[i].name);
    const value = utf8(args[i].value);
    if (add_ffi_var(ptr(key), key.byteLength, ptr(value), value.byteLength, ident()) != 0) {
      return Result.err(UNKNOWN_HOST_ERROR);
    }
  }
  const query = utf8(name);
  return collect(db_exec(queryType, ptr(query), query.byteLength, ident()));
}

/** Runs an insert query; the value is `{"lastInsertID":<id>,"rowsAffected":<n>}`. */
export function dbInsert(name: string, args: QueryArg[]): Result {
  return exec(0, name, args);
}

/** Runs a select query; the value is a JSON array of row objects (`[]` when none). */
export function dbSelect(name: string, args: QueryArg[]): Result {
  return exec(1, name, args);
}

/** Runs an update query; the value is `{"lastInsertID":0,"rowsAffected":<n>}`. */
export function dbUpdate(name: string, args: QueryArg[]): Result {
  return exec(2, name, args);
}

/** Runs a delete query; the value is `{"lastInsertID":0,"rowsAffected":<n>}`. */
export function dbDelete(name: string, args: QueryArg[]): Result {
  return exec(3, name, args);
}
