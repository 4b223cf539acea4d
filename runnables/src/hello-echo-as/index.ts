// hello-echo-as: answers `hello ` followed by the input bytes, like the Rust hello-echo.
import { concat, toBytes, useRunnable } from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

function run(input: ArrayBuffer): ArrayBuffer {
  return concat(toBytes("hello "), input);
}

useRunnable(run);
