// The FFI-result protocol and the few helpers every module of the SDK shares.

import { get_ffi_result } from "./env";
import { toString } from "./util";

/** What every Reactr SDK says when the host failed without an error text. */
export const UNKNOWN_HOST_ERROR = "unknown error returned from host";

/** The code a host error carries when a runnable passes it on: `returnError(result.code, ...)`. */
export const HOST_ERROR_CODE: i32 = 1;

let currentIdent: i32 = 0;

/** @internal Set by run_e for the job being run. */
export function setIdent(ident: i32): void {
  currentIdent = ident;
}

/** The ident of the job being run (0 outside run_e, which every host call refuses). */
export function ident(): i32 {
  return currentIdent;
}

/** The address of a buffer's first byte, as the ABI carries it. */
export function ptr(buffer: ArrayBuffer): usize {
  return changetype<usize>(buffer);
}

/** A string's UTF-8 bytes (no terminating NUL). */
export function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/**
 * The outcome of a host call: a value, or the host's error text. Host errors never trap; check
 * `ok` (or `isErr`) before using `value`, or call `unwrap()` to abort the job on an error.
 */
export class Result {
  constructor(
    /** The bytes the host answered; empty when the call failed. */
    public readonly value: ArrayBuffer,
    /** The host's error text (e.g. `capability is not enabled`), or null on success. */
    public readonly error: string | null,
    /**
     * The error's code: HOST_ERROR_CODE for host failures, the chained runnable's own code for
     * `runJob` errors; 0 on success.
     */
    public readonly code: i32 = 0,
  ) {}

  static ok(value: ArrayBuffer): Result {
    return new Result(value, null, 0);
  }

  static err(message: string, code: i32 = HOST_ERROR_CODE): Result {
    return new Result(new ArrayBuffer(0), message, code);
  }

  get ok(): bool {
    return this.error === null;
  }

  get isErr(): bool {
    return this.error !== null;
  }

  /** The value decoded as UTF-8, invalid sequences as U+FFFD ("" on an error). */
  text(): string {
    return toString(this.value);
  }

  /** The error text, "" on success. */
  errorText(): string {
    const error = this.error;
    return error === null ? "" : error;
  }

  /** The value; an error aborts the job with the error text (`runnable abort: <error>; ...`). */
  unwrap(): ArrayBuffer {
    const error = this.error;
    if (error !== null) throw new Error(error);
    return this.value;
  }
}

/**
 * Collects what a data-producing host call announced with `size`: `>= 0` is that many bytes of
 * value, `< 0` an error text of `-size` bytes; `-1` (and fixed codes like `-2`) mean nothing is
 * pending, so `get_ffi_result` finds nothing and the error is the generic one.
 */
export function collect(size: i32): Result {
  if (size == -1) return Result.err(UNKNOWN_HOST_ERROR);
  const length = size < 0 ? -size : size;
  const buffer = new ArrayBuffer(length);
  if (get_ffi_result(changetype<usize>(buffer), currentIdent) != 0) {
    return Result.err(UNKNOWN_HOST_ERROR);
  }
  if (size < 0) return Result.err(toString(buffer));
  return Result.ok(buffer);
}
