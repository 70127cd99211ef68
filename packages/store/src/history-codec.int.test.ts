import { CALLBACK_STATUSES, STATE_NAMES } from "@ess/domain";
import { useTestContext } from "@ess/testing/context";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeHistory, HISTORY_OUTCOMES } from "./history-codec.js";
import { expandIncludes } from "./scripts.js";

const ctx = useTestContext();

/** The include 'history' as the scripts run it: appends each entry (JSON in ARGV[2..]) under cap ARGV[1]. */
const APPEND = expandIncludes(`--@include history
for i = 2, #ARGV do appendHistory(KEYS[1], cjson.decode(ARGV[i]), ARGV[1]) end
return redis.call('LRANGE', KEYS[1], 0, -1)`);

let n = 0;
async function roundTrip(entries: Record<string, unknown>[], cap: number): Promise<Record<string, unknown>[]> {
  n += 1;
  const key = `${ctx.prefix}:{p0}:req:codec${n}:hist`;
  const raw = (await ctx.redis.eval(APPEND, 1, key, cap, ...entries.map((e) => JSON.stringify(e)))) as string[];
  await ctx.redis.del(key);
  return decodeHistory(raw);
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
    const raw = (await ctx.redis.eval(APPEND, 1, key, 50, JSON.stringify(next))) as string[];
    expect(decodeHistory(raw)).toEqual([next, old]);
  });
});
