// Chaining: run another job from inside this one (reactr-wasm's env.run_job).

import { run_job } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

/**
 * Runs the job `name` with `data` and waits for it. The value is the job's output; an error's
 * text is the job's error, e.g. `{"code":400,"message":"job failed"}`,
 * `failed to getWorker for jobType "<name>"`, `job timeout` or the chain-depth limit.
 */
export function runJob(name: string, data: ArrayBuffer): Result {
  const job = utf8(name);
  return collect(run_job(ptr(job), job.byteLength, ptr(data), data.byteLength, ident()));
}
