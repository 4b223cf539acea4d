// counter-as: the AssemblyScript twin of runnables/src/counter. Exact contract:
// runnables/src/README.md, "Contract: counter". Key `counter:<name>` (empty input → `default`),
// value decimal text, a miss counts as 0, no expiry. Get-then-set is not atomic.
import { cacheGet, cacheSet, isValidUTF8, returnError, toBytes, useRunnable } from "@suborbital/suborbital";
export { allocate, deallocate, run_e } from "@suborbital/suborbital";

// Whether the stored text is a count: non-empty ASCII digits whose value fits a u64.
function isCount(text: string): bool {
  if (text.length == 0) return false;
  let value: u64 = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return false;
    if (value > (U64.MAX_VALUE - <u64>digit) / 10) return false;
    value = value * 10 + <u64>digit;
  }
  return true;
}

// The value of a text that isCount accepted.
function parseCount(text: string): u64 {
  let value: u64 = 0;
  for (let i = 0; i < text.length; i++) value = value * 10 + <u64>(text.charCodeAt(i) - 0x30);
  return value;
}

function run(input: ArrayBuffer): ArrayBuffer {
  if (!isValidUTF8(input)) return returnError(400, "counter name must be UTF-8");
  let name = String.UTF8.decode(input);
  if (name.length == 0) name = "default";
  const key = "counter:" + name;

  let count: u64 = 0; // a miss, or no cache: counting starts again from zero
  const stored = cacheGet(key);
  if (stored.ok) {
    const text = stored.text();
    if (!isCount(text)) return returnError(500, 'counter "' + name + '" holds a non-number');
    count = parseCount(text);
  }
  if (count == U64.MAX_VALUE) return returnError(500, 'counter "' + name + '" overflowed');
  const text = (count + 1).toString();
  if (cacheSet(key, toBytes(text), 0).isErr) return returnError(500, "cache set failed");
  return toBytes(text);
}

useRunnable(run);
