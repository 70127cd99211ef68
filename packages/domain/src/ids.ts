/** Largest ESS request id: Java's Long.MAX_VALUE. */
export const MAX_REQUEST_ID = 9223372036854775807n;

/**
 * Parses a request id from a path segment into canonical decimal form ("007" → "7"), or returns
 * null when it is not a positive int64 (zero, sign, non-digits, > Long.MAX_VALUE). Kept as a string:
 * ids past 2^53 must not lose precision.
 */
export function parseRequestId(raw: string): string | null {
  const n = raw.length;
  if (n === 0 || n > 64) return null;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  while (start < n - 1 && raw.charCodeAt(start) === 48) start++;
  const id = start === 0 ? raw : raw.slice(start);
  if (id === "0") return null;
  if (id.length > 19 || (id.length === 19 && BigInt(id) > MAX_REQUEST_ID)) return null;
  return id;
}

/** The partition of a request: FNV-1a of its canonical id, modulo the partition count. */
export function partitionOf(requestId: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < requestId.length; i++) {
    h ^= requestId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
