import { indexRange, type QueryTimeField, type RequestQuery } from "@ess/contract";
import { EssError, type RequestState, STATE_NAMES } from "@ess/domain";
import type { Redis } from "ioredis";
import { HISTORY_HEAD_FIELD } from "./history-codec.js";
import type { Keys } from "./keys.js";
import { fanOut } from "./redis.js";

/** Field separator of index members (lua/includes/index.lua). */
const US = "\x1f";

/** Index rounds one page may take at most: with post-filters a page can come back short, never slow. */
const MAX_ROUNDS = 4;

/** One request of a query's page: its id and hash fields. */
export interface IndexedRequest {
  requestId: string;
  fields: Record<string, string>;
}

export interface RequestQueryPage {
  items: IndexedRequest[];
  /** pass back as `cursor` for the next page; null at the end */
  nextCursor: string | null;
}

/** A cursor: the index time and request id of the last request a page looked at. */
type Cursor = [time: number, id: string];

/** Largest time a 15-digit member holds, less one. */
const MAX_TIME = 10 ** 15 - 2;
const t15 = (ms: number) => String(ms).padStart(15, "0");
const sortKey = (time: string, id: string) => `${time}${US}${id}`;

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString("base64url");
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as unknown;
    if (
      Array.isArray(c) &&
      c.length === 2 &&
      Number.isSafeInteger(c[0]) &&
      c[0] >= 0 &&
      typeof c[1] === "string" &&
      /^[0-9]{1,19}$/.test(c[1])
    ) {
      return c as Cursor;
    }
  } catch {
    // fall through
  }
  throw new EssError("INVALID_BODY", "cursor is not one this server issued");
}

/** Hash field of each query time field. */
const TIME_FIELD: Record<QueryTimeField, string> = {
  submissionTime: "registeredAt",
  stateChangeTime: "stateChangeTime",
  completedTime: "completedTime",
  lastCheckInTime: "lastCheckInTime",
};

/** One index range of one partition a query reads. */
interface Source {
  p: number;
  /** member prefix, up to and including the separator before the time */
  prefix: string;
}

/** A member read from a source, parsed. */
interface Candidate {
  key: string;
  time: string;
  id: string;
  p: number;
  /** 'a' | 'j' | 's' and, for 's', the state, for 'j' the job definition */
  kind: string;
  value: string;
}

function parseMember(member: string, p: number): Candidate | null {
  const parts = member.split(US);
  if (parts.length < 3) return null;
  const id = parts[parts.length - 1] as string;
  const time = parts[parts.length - 2] as string;
  const kind = parts[0] as string;
  const value = parts.slice(1, -2).join(US);
  return { key: sortKey(time, id), time, id, p, kind, value };
}

/**
 * Reads the per-partition request index (the include lua/includes/index.lua keeps it, inside the scripts that change state):
 * a query is a few lexicographic range reads per partition, merged by time over the partitions as the
 * dead-letter listing does, then one hash read per request of the page. Each request is checked
 * against its hash, so a member left by an expired request is never returned.
 */
export class RequestIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  private sources(q: RequestQuery, partitions?: readonly number[]): Source[] {
    const prefixes =
      q.orderBy.field === "stateChangeTime"
        ? (q.states ?? []).map((s) => `s${US}${s}${US}`)
        : [q.text.jobDefinitionId !== undefined ? `j${US}${q.text.jobDefinitionId}${US}` : `a${US}`];
    const out: Source[] = [];
    const all = Array.from({ length: this.keys.partitions }, (_, p) => p);
    for (const p of partitions ?? all) for (const prefix of prefixes) out.push({ p, prefix });
    return out;
  }

  /** Whether a request's hash still backs the index member it was found by, and passes the filters. */
  private static matches(c: Candidate, f: Record<string, string>, q: RequestQuery): boolean {
    if (!f.state) return false;
    const time = Number(c.time);
    if (c.kind === "s" && (f.state !== c.value || Number(f.stateChangeTime) !== time)) return false;
    if (c.kind === "a" && Number(f.registeredAt) !== time) return false;
    if (c.kind === "j" && (f.jobDefinitionId !== c.value || Number(f.registeredAt) !== time)) return false;
    if (q.states && !q.states.includes(f.state as never)) return false;
    for (const [k, v] of Object.entries(q.text)) if (f[k] !== v) return false;
    if (q.isTimedOut !== undefined && (f.isTimedOut === "true") !== q.isTimedOut) return false;
    for (const [k, r] of Object.entries(q.ranges)) {
      const raw = f[TIME_FIELD[k as QueryTimeField]];
      if (raw === undefined) return false;
      const t = Number(raw);
      if ((r.min !== undefined && t < r.min) || (r.max !== undefined && t > r.max)) return false;
    }
    return true;
  }

  /**
   * One page of requests matching a query, in its order, after `cursor`. Per page at most a few rounds
   * of one range read per source and one HGETALL per request looked at, whatever the data size: when
   * the filters the index cannot serve drop many, the page comes back short with a next cursor.
   * `partitions` narrows the read to those partitions (default: all).
   */
  async query(
    q: RequestQuery,
    opts: { limit: number; cursor?: string | undefined; partitions?: readonly number[] | undefined },
  ): Promise<RequestQueryPage> {
    const { limit } = opts;
    let cursor: Cursor | null = opts.cursor ? decodeCursor(opts.cursor) : null;
    const range = indexRange(q);
    const desc = q.orderBy.desc;
    const sources = this.sources(q, opts.partitions);
    const items: IndexedRequest[] = [];
    if (range.min > range.max || sources.length === 0) return { items, nextCursor: null };
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const need = limit - items.length;
      const at = cursor;
      // one read per partition, together (a Cluster refuses a transaction across slots)
      const replies = await fanOut(sources, (s) => {
        const key = this.keys.requestIndex(s.p);
        let lo = `[${s.prefix}${t15(range.min)}`;
        let hi = `(${s.prefix}${t15(Math.min(range.max, MAX_TIME) + 1)}`;
        if (at) {
          const bound = `(${s.prefix}${t15(at[0])}${US}${at[1]}`;
          if (desc) hi = bound;
          else lo = bound;
        }
        return desc
          ? this.redis.zrevrangebylex(key, hi, lo, "LIMIT", 0, need)
          : this.redis.zrangebylex(key, lo, hi, "LIMIT", 0, need);
      });
      const candidates: Candidate[] = [];
      let full = false;
      replies.forEach(([err, list], i) => {
        if (err) throw err;
        const members = list as string[];
        if (members.length >= need) full = true;
        const p = (sources[i] as Source).p;
        for (const m of members) {
          const c = parseMember(m, p);
          if (c) candidates.push(c);
        }
      });
      candidates.sort((a, b) => (a.key === b.key ? 0 : a.key < b.key !== desc ? -1 : 1));
      // every member not read sorts after the `need` read from its source: the first `need` are exact
      const take = candidates.slice(0, need);
      if (take.length === 0) return { items, nextCursor: null };
      const rows = await fanOut(take, (c) => this.redis.hgetall(this.keys.request(c.p, c.id)));
      take.forEach((c, i) => {
        const f = (rows[i]?.[1] ?? {}) as Record<string, string>;
        delete f[HISTORY_HEAD_FIELD];
        if (RequestIndex.matches(c, f, q)) items.push({ requestId: c.id, fields: f });
      });
      const last = take[take.length - 1] as Candidate;
      cursor = [Number(last.time), last.id];
      const more = full || candidates.length > take.length;
      if (!more) return { items, nextCursor: null };
      if (items.length >= limit) break;
    }
    return { items, nextCursor: cursor ? encodeCursor(cursor) : null };
  }

  /**
   * How many requests are in each state, over every partition: one ZLEXCOUNT per state and partition
   * (O(log n) each), sent together. Terminal requests are counted until their hash expires and the
   * prune takes their members out.
   */
  async countByState(): Promise<Record<RequestState, number>> {
    const pairs = Array.from({ length: this.keys.partitions }, (_, p) => STATE_NAMES.map((s) => ({ p, s }))).flat();
    const replies = await fanOut(pairs, ({ p, s }) =>
      // the times after the prefix are digits: ':' sorts after every one of them
      this.redis.zlexcount(this.keys.requestIndex(p), `[s${US}${s}${US}`, `(s${US}${s}${US}:`),
    );
    const out = Object.fromEntries(STATE_NAMES.map((s) => [s, 0])) as Record<RequestState, number>;
    replies.forEach(([err, n], i) => {
      if (err) throw err;
      const { s } = pairs[i] as { s: RequestState };
      out[s] += Number(n ?? 0);
    });
    return out;
  }

  /** Every member of partition p's index (tests and tools; O(n)). */
  async members(p: number): Promise<string[]> {
    return this.redis.zrangebylex(this.keys.requestIndex(p), "-", "+");
  }
}
