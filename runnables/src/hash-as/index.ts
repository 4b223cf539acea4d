// hash-as: the AssemblyScript twin of runnables/src/hash (same algorithm, same outputs).
// Input = decimal round count N (default 200000 when empty or not a number, parsed as Rust's
// `str::trim().parse::<u64>()` does); output = the final 64-bit state as 16 lowercase hex digits.
import { isValidUTF8, toBytes, useRunnable } from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

const DEFAULT_ROUNDS: u64 = 200_000;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const HEX = "0123456789abcdef";

// Unicode White_Space, as Rust's char::is_whitespace (and so str::trim) sees it.
function isWhitespace(c: i32): bool {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// The round count, or DEFAULT_ROUNDS when the input is not a u64 (after trimming).
function rounds(input: ArrayBuffer): u64 {
  if (!isValidUTF8(input)) return DEFAULT_ROUNDS;
  const text = String.UTF8.decode(input);
  let start = 0;
  let end = text.length;
  while (start < end && isWhitespace(text.charCodeAt(start))) start++;
  while (end > start && isWhitespace(text.charCodeAt(end - 1))) end--;
  if (start < end && text.charCodeAt(start) == 0x2b) start++; // Rust accepts one leading '+'
  if (start == end) return DEFAULT_ROUNDS;
  let value: u64 = 0;
  for (let i = start; i < end; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return DEFAULT_ROUNDS;
    if (value > (U64.MAX_VALUE - <u64>digit) / 10) return DEFAULT_ROUNDS; // overflow
    value = value * 10 + <u64>digit;
  }
  return value;
}

function run(input: ArrayBuffer): ArrayBuffer {
  const count = rounds(input);
  let state = FNV_OFFSET;
  for (let round: u64 = 0; round < count; round++) {
    let fnv = FNV_OFFSET ^ round;
    for (let shift: u64 = 0; shift < 64; shift += 8) {
      fnv = (fnv ^ ((state >> shift) & 0xff)) * FNV_PRIME;
    }
    state = fnv ^ (fnv >> 29);
    state ^= state << 17;
    state ^= state >> 31;
  }
  let out = "";
  for (let shift: i32 = 60; shift >= 0; shift -= 4) {
    out += HEX.charAt(<i32>((state >> <u64>shift) & 15));
  }
  return toBytes(out);
}

useRunnable(run);
