import { CALLBACK_STATUSES, STATE_NAMES } from "@ess/domain";
import { useTestContext } from "@ess/testing/context";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeHistory, HISTORY_HEAD_FIELD, HISTORY_OUTCOMES } from "./history-codec.js";
import { expandIncludes } from "./scripts.js";

const ctx = useTestContext();

/**
 * The include 'history' as the scripts run it: appends each entry (JSON in ARGV[2..]) under cap
 * ARGV[1] to list KEYS[1], the header in hash KEYS[2]; returns the list and the header.
 */
const APPEND = expandIncludes(`--@include history
for i = 2, #ARGV do appendHistory(KEYS[1], KEYS[2], cjson.decode(ARGV[i]), ARGV[1]) end
return { redis.call('LRANGE', KEYS[1], 0, -1), redis.call('HGET', KEYS[2], H_HEAD_FIELD) }`);

/** Appends entries to a request's history (list key, hash key req) under cap; its list and header after. */
async function append(key: string, req: string, cap: number, entries: Record<string, unknown>[]) {
  const [list, head] = (await ctx.redis.eval(APPEND, 2, key, req, cap, ...entries.map((e) => JSON.stringify(e)))) as [
    string[],
    string | null,
  ];
  return { list, head };
}

let n = 0;
async function roundTrip(entries: Record<string, unknown>[], cap: number): Promise<Record<string, unknown>[]> {
  n += 1;
  const key = `${ctx.prefix}:{p0}:req:codec${n}:hist`;
  const req = `${ctx.prefix}:{p0}:req:codec${n}`;
  const { list, head } = await append(key, req, cap, entries);
  await ctx.redis.del(key, req);
  return decodeHistory(list, head);
}

const time = fc.integer({ min: 1_600_000_000_000, max: 2_100_000_000_000 });
const seq = fc.integer({ min: 0, max: 10_000_000 });
const execution = fc.integer({ min: 1, max: 5000 });
const state = fc.constantFrom(...STATE_NAMES);
const status = fc.constantFrom(...CALLBACK_STATUSES);
const text = fc.string({ unit: "grapheme", maxLength: 40 });

/** Entries of every kind the scripts write, and a few they do not (the generic path). */
const registered = fc.record(
  {
    outcome: fc.constant("registered"),
    execution,
    to: state,
    appliedAt: time,
    from: state,
    reason: fc.constant("resumed"),
  },
  { requiredKeys: ["outcome", "execution", "to", "appliedAt"] },
);
const callback = fc
  .record(
    {
      outcome: fc.constantFrom("applied", "late", "ignored"),
      seq,
      status,
      execution,
      from: state,
      to: state,
      acceptedAt: time,
      appliedAt: time,
      message: text,
      current: execution,
      reasonKind: fc.constantFrom("none", "stale", "staleOther", "state", "unknownState"),
    },
    {
      requiredKeys: [
        "outcome",
        "seq",
        "status",
        "execution",
        "from",
        "acceptedAt",
        "appliedAt",
        "current",
        "reasonKind",
      ],
    },
  )
  .map(({ current, reasonKind, ...e }) => {
    const out: Record<string, unknown> = { ...e };
    if (reasonKind === "stale") out.reason = `stale execution ${e.execution} (current ${current})`;
    if (reasonKind === "staleOther") out.reason = `stale execution ${e.execution + 1} (current ${current})`;
    if (reasonKind === "state") out.reason = `request is ${e.from}`;
    if (reasonKind === "unknownState") out.reason = "request is NOT_A_STATE";
    return out;
  });
const skipped = fc
  .record({ seq, gap: fc.integer({ min: 0, max: 1000 }), appliedAt: time, open: fc.integer({ min: 0, max: 1e9 }) })
  .map(({ seq, gap, appliedAt, open }) => ({
    outcome: "skipped",
    seq,
    lastSeq: seq + gap,
    appliedAt,
    reason: `gap open ${open} ms`,
  }));
const scheduler = fc.record({
  outcome: fc.constantFrom("cancelRequested", "forceCancelled", "timedOut"),
  from: state,
  to: state,
  execution: fc.integer({ min: 0, max: 5000 }),
  appliedAt: time,
});
/** An operator console action: action, actor and a free-text reason (which may look like a coded one). */
const operator = fc.record({
  outcome: fc.constant("operator"),
  action: fc.constantFrom("cancel", "forceCancel", "rearm", "replayDeadLetters"),
  actor: text,
  reason: fc.oneof(text, fc.constant("resumed"), fc.constant("request is RUNNING"), fc.constant("gap open 5 ms")),
  from: state,
  to: state,
  execution: fc.integer({ min: 0, max: 5000 }),
  appliedAt: time,
});
/** Fields the codec has no code for: kept as JSON beside the packed ones. */
const other = fc.record(
  {
    outcome: fc.oneof(fc.constantFrom(...HISTORY_OUTCOMES), text),
    status: fc.oneof(status, text),
    from: fc.oneof(state, text),
    seq: fc.oneof(seq, text, fc.constant(2.5)),
    lastSeq: fc.oneof(seq, text),
    execution: fc.oneof(execution, text, fc.constant(-3)),
    appliedAt: fc.oneof(time, fc.constant(1.25)),
    acceptedAt: fc.oneof(time, text),
    message: fc.oneof(text, fc.integer({ min: -1000, max: 1000 })),
    reason: fc.oneof(text, fc.constant("gap open 007 ms"), fc.constant("resumed")),
    note: text,
  },
  { requiredKeys: [] },
);

describe("packed history entries", () => {
  it("decode to the entries the scripts appended, newest first, capped, over every kind", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(registered, callback, skipped, scheduler, operator, other), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        async (entries, cap) => {
          expect(await roundTrip(entries, cap)).toEqual(entries.slice().reverse().slice(0, cap));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("read a list stored as JSON entries, and keep it readable once packed entries join it", async () => {
    const key = `${ctx.prefix}:{p0}:req:legacy:hist`;
    const req = `${ctx.prefix}:{p0}:req:legacy`;
    const old = { outcome: "registered", execution: 1, to: "RUNNING", appliedAt: 1_700_000_000_000 };
    await ctx.redis.rpush(key, JSON.stringify(old));
    const next = {
      outcome: "applied",
      seq: 1,
      status: "UPDATE",
      execution: 1,
      from: "RUNNING",
      to: "RUNNING",
      acceptedAt: 1_700_000_000_005,
      appliedAt: 1_700_000_000_009,
    };
    const { list, head } = await append(key, req, 50, [next]);
    expect(decodeHistory(list, head)).toEqual([next, old]);
  });

  const entry = (seq: number, at: number) => ({
    outcome: "applied",
    seq,
    status: "UPDATE",
    execution: 1,
    from: "RUNNING",
    to: "RUNNING",
    acceptedAt: at - 4,
    appliedAt: at,
    message: `step ${seq}`,
  });

  it("keep the header in the request hash, the list holding only entries, capped", async () => {
    const key = `${ctx.prefix}:{p0}:req:capped:hist`;
    const req = `${ctx.prefix}:{p0}:req:capped`;
    const entries = Array.from({ length: 7 }, (_, i) => entry(i + 1, 1_700_000_000_000 + 100 * i));
    let last = { list: [] as string[], head: null as string | null };
    for (const e of entries) last = await append(key, req, 5, [e]);
    expect(last.list).toHaveLength(5);
    expect(last.list.some((x) => x.startsWith("#"))).toBe(false);
    expect(last.head).toBe(`${(1_700_000_000_600).toString(36)},${(7).toString(36)}`);
    expect(decodeHistory(last.list, last.head)).toEqual(entries.slice(2).reverse());
  });

  it("read a list that ends in its header (written before the header moved into the hash), and move the header at the next entry", async () => {
    const key = `${ctx.prefix}:{p0}:req:tail:hist`;
    const req = `${ctx.prefix}:{p0}:req:tail`;
    const older = [entry(1, 1_700_000_000_000), entry(2, 1_700_000_000_100), entry(3, 1_700_000_000_200)];
    // the layout as written before: packed entries, newest first, then '#<appliedAt>,<seq>' of the newest
    const before = (await append(key, req, 3, older)).list;
    const head = (await ctx.redis.hget(req, HISTORY_HEAD_FIELD)) as string;
    await ctx.redis.del(key, req);
    await ctx.redis.rpush(key, ...before, `#${head}`);
    await ctx.redis.hset(req, "state", "RUNNING");
    expect(decodeHistory(await ctx.redis.lrange(key, 0, -1))).toEqual(older.slice().reverse());
    const next = entry(4, 1_700_000_000_300);
    const after = await append(key, req, 3, [next]);
    expect(after.head).toBe(`${(1_700_000_000_300).toString(36)},4`);
    expect(after.list).toHaveLength(3);
    expect(after.list.some((x) => x.startsWith("#"))).toBe(false);
    expect(decodeHistory(after.list, after.head)).toEqual([next, older[2], older[1]]);
  });
});
