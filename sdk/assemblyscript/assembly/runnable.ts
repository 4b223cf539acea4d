// The runnable's entry points: registration, the ABI exports run_e/allocate/deallocate, errors
// and the abort handler (`asc --use abort=...`).

import { return_abort, return_error, return_result } from "./env";
import { ident, setIdent } from "./ffi";

/** A job handler: gets the job's input bytes, answers the output bytes. */
export type RunFunction = (input: ArrayBuffer) => ArrayBuffer;

let runnable: RunFunction | null = null;
let failed = false;
let failureCode: i32 = 0;
let failureMessage = "";
let aborting = false;

/** Registers the function run_e calls for every job. Call it once, at the top level of index.ts. */
export function useRunnable(run: RunFunction): void {
  runnable = run;
}

/**
 * Makes the current job fail with `code` and `message`; return its (empty) result from `run`:
 * `return returnError(400, "bad input")`. The host reports `{"code":400,"message":"bad input"}`
 * and the HTTP API answers status `code` when it is 400–599 (500 otherwise). An error set this
 * way wins over whatever `run` returns.
 */
export function returnError(code: i32, message: string): ArrayBuffer {
  if (!failed) {
    failed = true;
    failureCode = code;
    failureMessage = message;
  }
  return new ArrayBuffer(0);
}

/** ABI export: runs one job on the `size` input bytes at `ptr`. */
export function run_e(ptr: usize, size: i32, jobIdent: i32): void {
  setIdent(jobIdent);
  failed = false;
  failureMessage = "";
  const run = runnable;
  if (run === null) {
    returnError(-1, "No runnable set");
  } else {
    const input = new ArrayBuffer(size);
    memory.copy(changetype<usize>(input), ptr, <usize>size);
    const output = run(input);
    if (!failed) return_result(changetype<usize>(output), output.byteLength, jobIdent);
  }
  if (failed) {
    const message = String.UTF8.encode(failureMessage);
    return_error(failureCode, changetype<usize>(message), message.byteLength, jobIdent);
    failureMessage = "";
  }
  setIdent(0);
  // The minimal runtime never collects on its own. Between jobs nothing but globals is live,
  // so a full collection here keeps a pooled instance's heap at the size of one job.
  __collect();
}

/** ABI export: a buffer of `size` bytes for the host to write the job input into. */
export function allocate(size: i32): usize {
  return heap.alloc(<usize>size);
}

/** ABI export: frees a buffer from `allocate`. */
export function deallocate(ptr: usize, size: i32): void {
  heap.free(ptr);
}

/**
 * The abort handler the build passes to asc (`--use abort=`): reports `message`, `file`,
 * `line` and `col` UTF-8 encoded through `env.return_abort`, then traps. The host fails the job
 * with `runnable abort: <message>; file: <file>, line: <line>, col: <col>` (code -1).
 */
export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (aborting) unreachable(); // failed again while reporting (e.g. out of memory): just trap
  aborting = true;
  const text = String.UTF8.encode(message === null ? "" : message);
  const file = String.UTF8.encode(fileName === null ? "" : fileName);
  return_abort(changetype<usize>(text), text.byteLength, changetype<usize>(file), file.byteLength, line, column, ident());
  unreachable();
}
