// Chaining: run another job from inside this one (reactr-wasm's env.run_job).

import { run_job } from "./env";
import { collect, ident, ptr, Result, utf8 } from "./ffi";

/**
 * Runs the job `name` with `data` and waits for it; the value is the job's output. A runnable's
 * error comes back with that runnable's own code and message (`result.code`,
 * `result.errorText()`), so `returnError(result.code, result.errorText())` passes it on
 * unchanged; other failures (`failed to getWorker for jobType "<name>"`, `job timeout`, the
 * chain-depth limit) have code HOST_ERROR_CODE and the host's text.
 */
export function runJob(name: string, data: ArrayBuffer): Result {
  const job = utf8(name);
  const result = collect(run_job(ptr(job), job.byteLength, ptr(data), data.byteLength, ident()));
  if (result.ok) return result;
  const text = result.errorText();
  const parser = new RunErrParser(text);
  if (parser.parse()) return Result.err(parser.message, parser.code);
  return result;
}

// Reads a RunErr's JSON form, `{"code":<int>,"message":"<text>"}` (either key may be absent).
class RunErrParser {
  at: i32 = 0;
  code: i32 = 0;
  message: string = "";

  constructor(private text: string) {}

  parse(): bool {
    if (!this.eat(0x7b)) return false; // {
    let first = true;
    while (!this.eat(0x7d)) { // }
      if (!first && !this.eat(0x2c)) return false; // ,
      first = false;
      const key = this.string();
      if (key === null || !this.eat(0x3a)) return false; // :
      if (key == "code") {
        if (!this.integer()) return false;
      } else if (key == "message") {
        const message = this.string();
        if (message === null) return false;
        this.message = message;
      } else return false;
    }
    this.skipSpace();
    return this.at == this.text.length;
  }

  skipSpace(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.at++;
    }
  }

  eat(c: i32): bool {
    this.skipSpace();
    if (this.at < this.text.length && this.text.charCodeAt(this.at) == c) {
      this.at++;
      return true;
    }
    return false;
  }

  integer(): bool {
    this.skipSpace();
    let negative = false;
    if (this.at < this.text.length && this.text.charCodeAt(this.at) == 0x2d) {
      negative = true;
      this.at++;
    }
    const start = this.at;
    let value: i64 = 0;
    while (this.at < this.text.length) {
      const digit = this.text.charCodeAt(this.at) - 0x30;
      if (digit < 0 || digit > 9) break;
      value = value * 10 + digit;
      if (value > 0x80000000) return false;
      this.at++;
    }
    if (this.at == start) return false;
    if (negative) value = -value;
    if (value > i32.MAX_VALUE || value < i32.MIN_VALUE) return false;
    this.code = <i32>value;
    return true;
  }

  string(): string | null {
    if (!this.eat(0x22)) return null; // "
    const parts = new Array<string>();
    let run = this.at;
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c == 0x22) {
        parts.push(this.text.substring(run, this.at));
        this.at++;
        return parts.join("");
      }
      if (c != 0x5c) {
        this.at++;
        continue;
      }
      parts.push(this.text.substring(run, this.at));
      if (this.at + 1 >= this.text.length) return null;
      const e = this.text.charCodeAt(this.at + 1);
      this.at += 2;
      if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x75) {
        if (this.at + 4 > this.text.length) return null;
        let unit = 0;
        for (let k = 0; k < 4; k++) {
          const h = hexValue(this.text.charCodeAt(this.at + k));
          if (h < 0) return null;
          unit = (unit << 4) | h;
        }
        parts.push(String.fromCharCode(unit)); // a surrogate pair arrives as two escapes
        this.at += 4;
      } else parts.push(String.fromCharCode(e)); // \" \\ \/
      run = this.at;
    }
    return null;
  }
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}
