// Small conversions and a JSON string writer.

/**
 * The bytes as text. Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (as Rust's
 * `String::from_utf8_lossy` and the WHATWG decoder do).
 */
export function toString(input: ArrayBuffer): string {
  const base = changetype<usize>(input);
  const n = input.byteLength;
  let parts: string[] | null = null;
  let i = 0;
  let runStart = 0;
  while (i < n) {
    const size = sequenceAt(base, i, n);
    if (size > 0) {
      i += size;
      continue;
    }
    if (parts === null) parts = new Array<string>();
    parts.push(String.UTF8.decodeUnsafe(base + <usize>runStart, <usize>(i - runStart)));
    parts.push("\uFFFD");
    i -= size;
    runStart = i;
  }
  if (parts === null) return String.UTF8.decode(input);
  parts.push(String.UTF8.decodeUnsafe(base + <usize>runStart, <usize>(n - runStart)));
  return parts.join("");
}

/** The text's UTF-8 bytes. */
export function toBytes(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/** Whether the bytes are well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
export function isValidUTF8(input: ArrayBuffer): bool {
  const base = changetype<usize>(input);
  const n = input.byteLength;
  let i = 0;
  while (i < n) {
    const size = sequenceAt(base, i, n);
    if (size < 0) return false;
    i += size;
  }
  return true;
}

// The length of the well-formed UTF-8 sequence at byte i, or minus the length of the maximal
// invalid subpart there (the lead byte plus the continuation bytes that were still acceptable).
function sequenceAt(base: usize, i: i32, n: i32): i32 {
  const b0 = <u32>load<u8>(base + <usize>i);
  if (b0 < 0x80) return 1;
  let need = 0;
  let low: u32 = 0x80;
  let high: u32 = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) need = 1;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) low = 0xa0;
    if (b0 == 0xed) high = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) low = 0x90;
    if (b0 == 0xf4) high = 0x8f;
  } else return -1;
  for (let k = 1; k <= need; k++) {
    if (i + k >= n) return -k;
    const b = <u32>load<u8>(base + <usize>(i + k));
    if (b < (k == 1 ? low : 0x80) || b > (k == 1 ? high : 0xbf)) return -k;
  }
  return need + 1;
}

const HEX = "0123456789abcdef";

/**
 * `text` as a JSON string literal, quotes included: `"`, `\` and control characters escaped
 * (`\n`, `\r`, `\t`, else `\u00XX`), everything else (non-ASCII too) copied as is.
 */
export function jsonString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + HEX.charAt(c >> 4) + HEX.charAt(c & 15);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** A compact JSON object of string members in the given order: `jsonObject(["a"], ["1"])` is `{"a":"1"}`. */
export function jsonObject(keys: string[], values: string[]): string {
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) out += ",";
    out += jsonString(keys[i]) + ":" + jsonString(i < values.length ? values[i] : "");
  }
  return out + "}";
}

/** The bytes of `a` followed by those of `b`. */
export function concat(a: ArrayBuffer, b: ArrayBuffer): ArrayBuffer {
  const out = new ArrayBuffer(a.byteLength + b.byteLength);
  memory.copy(changetype<usize>(out), changetype<usize>(a), <usize>a.byteLength);
  memory.copy(changetype<usize>(out) + <usize>a.byteLength, changetype<usize>(b), <usize>b.byteLength);
  return out;
}
