import { EssError } from "@ess/domain";
import type { Redis } from "ioredis";
import type { DeadLetterQuery } from "./dlq/entries.js";
import type { Keys } from "./keys.js";

/** How an audited action ended: done, refused (by role or by the current state), or failed on the way. */
export const AUDIT_OUTCOMES = ["succeeded", "refused", "failed"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** One operator action, as the audit log keeps it. */
export interface AuditEntry {
  /** the stream id: orders the entries and is the paging cursor */
  id: string;
  /** when it was recorded (ms since the epoch) */
  at: number;
  /** the credential's name (never its secret) */
  actor: string;
  /** the console role the actor acted with (viewer, operator, admin) */
  role: string;
  /** what was done, e.g. `request.cancel`, `deadLetter.purge`, `bulk.confirm` */
  action: string;
  /** what it was done to: `request/<id>`, `dead-letter/<id>`, `bulk/<id>` */
  target: string;
  /** the reason the operator gave ("" only for calls of the older admin API that take none) */
  reason: string;
  /** a bulk action's filter, as snapshotted by the server */
  filter?: DeadLetterQuery;
  /** how many entries the action covered (a bulk action's estimate or result) */
  count?: number;
  outcome: AuditOutcome;
  /** the refusal's or failure's message, or a short result */
  detail?: string;
}

/** What a caller gives to record an entry: everything but the id and, optionally, the time. */
export type AuditRecord = Omit<AuditEntry, "id" | "at"> & { at?: number };

/** Filters of an audit listing (exact matches) and its paging. */
export interface AuditQuery {
  /** an entry id from a previous page's `next`: the page starts after it (older entries) */
  cursor?: string | undefined;
  /** entries per page (1..500, default 50) */
  limit?: number | undefined;
  actor?: string | undefined;
  /** an action, or a prefix of actions ending in `*` (`bulk.*`) */
  action?: string | undefined;
  target?: string | undefined;
}

/** The audit log keeps this many entries when none is configured (AUDIT_MAX_ENTRIES). */
export const DEFAULT_AUDIT_MAX_ENTRIES = 100_000;
/** Largest audit page. */
export const MAX_AUDIT_PAGE = 500;
/** Entries one filtered listing reads at most before it answers with what it found and a cursor. */
const MAX_SCAN = 5000;
/** Entries read per round of a listing. */
const SCAN_BATCH = 200;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

/**
 * The operator audit log: a Redis stream on its own hash tag (`<prefix>:{audit}:log`), capped at
 * `maxEntries` (exact MAXLEN, so the bound is what it says: the oldest entries go first). Newest
 * first when listed; a stream id is the cursor.
 */
export class AuditLog {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly maxEntries = DEFAULT_AUDIT_MAX_ENTRIES,
  ) {}

  /** Appends one entry (trimming the oldest past the cap) and returns it with its id. */
  async record(entry: AuditRecord): Promise<AuditEntry> {
    const at = entry.at ?? Date.now();
    const { at: _at, ...rest } = entry;
    const body = { ...rest, at };
    const id = (await this.redis.xadd(
      this.keys.auditLog(),
      "MAXLEN",
      this.maxEntries,
      "*",
      "e",
      JSON.stringify(body),
    )) as string;
    return { id, ...body };
  }

  /** Entries newest first, filtered, one page after `cursor`; `next` when there may be more. */
  async list(q: AuditQuery = {}): Promise<{ items: AuditEntry[]; next?: string }> {
    const limit = Math.min(Math.max(q.limit ?? 50, 1), MAX_AUDIT_PAGE);
    if (q.cursor !== undefined && !STREAM_ID.test(q.cursor)) {
      throw new EssError("INVALID_BODY", "cursor is not one this server issued");
    }
    const items: AuditEntry[] = [];
    let from = q.cursor === undefined ? "+" : `(${q.cursor}`;
    let scanned = 0;
    for (;;) {
      const batch = (await this.redis.xrevrange(this.keys.auditLog(), from, "-", "COUNT", SCAN_BATCH)) as [
        string,
        string[],
      ][];
      for (const [id, fields] of batch) {
        scanned++;
        const e = decode(id, fields);
        if (e && matches(e, q)) {
          items.push(e);
          if (items.length >= limit) return { items, next: id };
        }
        from = `(${id}`;
      }
      if (batch.length < SCAN_BATCH) return { items };
      if (scanned >= MAX_SCAN) return { items, next: from.slice(1) };
    }
  }

  /** Entries held now (at most maxEntries). */
  length(): Promise<number> {
    return this.redis.xlen(this.keys.auditLog());
  }
}

function decode(id: string, fields: string[]): AuditEntry | undefined {
  const i = fields.indexOf("e");
  const raw = i >= 0 ? fields[i + 1] : undefined;
  if (raw === undefined) return undefined;
  try {
    return { id, ...(JSON.parse(raw) as Omit<AuditEntry, "id">) };
  } catch {
    return undefined;
  }
}

function matches(e: AuditEntry, q: AuditQuery): boolean {
  return (
    (q.actor === undefined || e.actor === q.actor) &&
    (q.action === undefined ||
      (q.action.endsWith("*") ? e.action.startsWith(q.action.slice(0, -1)) : e.action === q.action)) &&
    (q.target === undefined || e.target === q.target)
  );
}
