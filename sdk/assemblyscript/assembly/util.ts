// Small conversions and a JSON string writer.

/** The bytes as text (invalid UTF-8 sequences become U+FFFD). */
export function toString(input: ArrayBuffer): string {
  return String.UTF8.decode(input);
}

/** The text's UTF-8 bytes. */
export function toBytes(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

/** Whether the bytes are well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
export function isValidUTF8(input: ArrayBuffer): bool {
  const bytes = Uint8Array.wrap(input);
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b0 = <u32>bytes[i];
    if (b0 < 0x80) {
      i += 1;
      continue;
    }
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
    } else return false;
    if (i + need >= n) return false; // truncated sequence
    for (let k = 1; k <= need; k++) {
      const b = <u32>bytes[i + k];
      const lo = k == 1 ? low : 0x80;
      const hi = k == 1 ? high : 0xbf;
      if (b < lo || b > hi) return false;
    }
    i += need + 1;
  }
  return true;
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
