// Log lines through the host's logger, tagged with the job.

import { log_msg } from "./env";
import { ident, ptr, utf8 } from "./ffi";

function log(message: string, level: i32): void {
  const text = utf8(message);
  log_msg(ptr(text), text.byteLength, level, ident());
}

export function logErr(message: string): void {
  log(message, 1);
}

export function logWarn(message: string): void {
  log(message, 2);
}

export function logInfo(message: string): void {
  log(message, 3);
}

export function logDebug(message: string): void {
  log(message, 4);
}
