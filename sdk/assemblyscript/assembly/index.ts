// @suborbital/suborbital: the guest SDK for AssemblyScript runnables served by reactr-wasm.
//
//   import { useRunnable, logInfo } from "@suborbital/suborbital";
//   export { allocate, deallocate, run_e } from "@suborbital/suborbital";
//
//   function run(input: ArrayBuffer): ArrayBuffer { ... }
//   useRunnable(run);
//
// See README.md for the whole API.

export { abortHandler, allocate, deallocate, returnError, run_e, RunFunction, useRunnable } from "./runnable";
export { HOST_ERROR_CODE, ident, Result, UNKNOWN_HOST_ERROR } from "./ffi";
export * from "./req";
export * from "./resp";
export * from "./http";
export * from "./cache";
export * from "./log";
export * from "./file";
export * from "./graphql";
export * from "./db";
export * from "./job";
export * from "./util";
