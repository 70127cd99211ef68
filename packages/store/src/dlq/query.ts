import { EssError } from "@ess/domain";
import type { Redis } from "ioredis";
import type { Keys } from "../keys.js";
import type { DeadLetter, DeadLetterQuery } from "./entries.js";

export interface DeadLetterPage {
  items: DeadLetter[];
  /** pass back as `cursor` for the next page; null at the end */
  nextCursor: string | null;
}

/** Page size when none is asked for, and the largest page a caller may ask for. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** Index entries read beyond a page: room for entries that share the cursor's millisecond. */
const PAGE_SLACK = 64;
/** Rounds of index reads one page may take before it answers with what it has and a cursor. */
const MAX_ROUNDS = 100;

type Cursor = [score: number, partition: number, id: string];

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(c) && typeof c[0] === "number" && typeof c[1] === "number" && typeof c[2] === "string") {
      return c as Cursor;
    }
  } catch {
    // fall through
  }
  throw new EssError("INVALID_BODY", "cursor is not one this server issued");
}

const after = (a: Cursor, b: Cursor) => (a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2]);

/**
 * Filtered, paged reads of the dead letters through their indexes: a few range reads per page at any
 * size, oldest first, ordered by (time, partition, id).
 */
export class DeadLetterQueries {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** The partitions a query touches. */
  private partitionsOf(q: DeadLetterQuery): number[] {
    if (q.requestId) return [this.keys.partition(q.requestId)];
    if (q.partition !== undefined) return [q.partition];
    return Array.from({ length: this.keys.partitions }, (_, i) => i);
  }

  /** The most selective index for a query in partition p. */
  private indexFor(p: number, q: DeadLetterQuery): string {
    if (q.requestId) return this.keys.deadLetterIndex(p, { field: "req", value: q.requestId });
    if (q.status) return this.keys.deadLetterIndex(p, { field: "status", value: q.status });
    if (q.reason) return this.keys.deadLetterIndex(p, { field: "reason", value: q.reason });
    return this.keys.deadLetterIndex(p);
  }

  private matches(e: DeadLetter, q: DeadLetterQuery): boolean {
    return (
      (q.requestId === undefined || e.requestId === q.requestId) &&
      (q.status === undefined || e.status === q.status) &&
      (q.reason === undefined || e.reason === q.reason) &&
      (q.partition === undefined || e.partition === q.partition)
    );
  }

  /** Dead letters oldest first, filtered, one page after `cursor`. A few range reads per page at any size. */
  async list(q: DeadLetterQuery, opts: { limit?: number; cursor?: string | undefined } = {}): Promise<DeadLetterPage> {
    const limit = Math.min(Math.max(opts.limit ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE);
    let cursor: Cursor | null = opts.cursor ? decodeCursor(opts.cursor) : null;
    const min = q.from ?? 0;
    const max = q.to ?? Number.MAX_SAFE_INTEGER;
    const fetchSize = limit + PAGE_SLACK;
    const parts = this.partitionsOf(q);
    const items: DeadLetter[] = [];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const m = this.redis.multi();
      for (const p of parts) {
        // order is (score, partition, id): a lower partition's entries at the cursor's score came before
        const lo = cursor && cursor[0] >= min ? (p < cursor[1] ? `(${cursor[0]}` : `${cursor[0]}`) : `${min}`;
        m.zrangebyscore(this.indexFor(p, q), lo, max, "WITHSCORES", "LIMIT", 0, fetchSize);
      }
      const replies = (await m.exec()) ?? [];
      const candidates: Cursor[] = [];
      let bound: Cursor | null = null; // past the end of a partial read, order is unknown
      replies.forEach(([err, flat], i) => {
        if (err) throw err;
        const list = flat as string[];
        const p = parts[i] ?? 0;
        for (let j = 0; j < list.length; j += 2) {
          const c: Cursor = [Number(list[j + 1]), p, list[j] ?? ""];
          if (!cursor || after(c, cursor)) candidates.push(c);
        }
        if (list.length / 2 >= fetchSize) {
          const last: Cursor = [Number(list[list.length - 1]), p, list[list.length - 2] ?? ""];
          if (!bound || after(bound, last)) bound = last;
        }
      });
      candidates.sort((a, b) => (after(a, b) ? 1 : after(b, a) ? -1 : 0));
      const safe = bound ? candidates.filter((c) => !after(c, bound as Cursor)) : candidates;
      if (safe.length === 0) {
        if (!bound) return { items, nextCursor: null };
        cursor = bound;
        continue;
      }
      const take = safe.slice(0, limit - items.length);
      const fetch = this.redis.multi();
      for (const c of take) fetch.hget(this.keys.deadLetters(c[1]), c[2]);
      const rows = (await fetch.exec()) ?? [];
      take.forEach((_, i) => {
        const raw = rows[i]?.[1] as string | null | undefined;
        if (!raw) return;
        const e = JSON.parse(raw) as DeadLetter;
        if (this.matches(e, q)) items.push(e);
      });
      cursor = take[take.length - 1] ?? cursor;
      const more = bound !== null || candidates.length > take.length;
      if (!more) return { items, nextCursor: null };
      if (items.length >= limit) return { items, nextCursor: cursor ? encodeCursor(cursor) : null };
    }
    return { items, nextCursor: cursor ? encodeCursor(cursor) : null };
  }

  /** Entries matching a query (ZCOUNT on the chosen index: exact unless a second filter narrows it). */
  async countMatching(q: DeadLetterQuery): Promise<number> {
    const m = this.redis.multi();
    for (const p of this.partitionsOf(q)) m.zcount(this.indexFor(p, q), q.from ?? 0, q.to ?? Number.MAX_SAFE_INTEGER);
    const replies = (await m.exec()) ?? [];
    return replies.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
  }
}
