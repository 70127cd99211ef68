import type { DeadLetters, RequestStore } from "@ess/store";
import { eventually } from "@ess/testing";
import type { Sent } from "./load.js";

/** The counts a fault test compares and prints. */
export interface Accounting {
  accepted: number;
  applied: number;
  ignored: number;
  late: number;
  deadLettered: number;
  /** seqs that appear twice in a history as applied/ignored/late (must be 0) */
  twice: number;
  /** 200-acknowledged callbacks that ended nowhere (must be 0) */
  missing: number;
}

/**
 * Waits until every request's accepted callbacks are accounted for, then checks each one ended as
 * exactly one of: applied, late, ignored (in the history), or dead-lettered.
 */
export async function account(
  store: RequestStore,
  deadLetters: DeadLetters,
  sent: Sent[],
  timeoutMs = 90000,
): Promise<Accounting> {
  const acc: Accounting = { accepted: 0, applied: 0, ignored: 0, late: 0, deadLettered: 0, twice: 0, missing: 0 };
  const deadline = Date.now() + timeoutMs;
  for (const s of sent) {
    acc.accepted += s.accepted.length;
    const settle = async () => {
      const stored = await store.read(s.id);
      const seen = (stored?.history ?? []).filter(
        (h) => h.outcome === "applied" || h.outcome === "ignored" || h.outcome === "late",
      );
      const dead = (await deadLetters.list({ requestId: s.id }, { limit: 1000 })).items.filter((e) => e.name === "cb");
      return seen.length + dead.length >= s.accepted.length ? { seen, dead } : null;
    };
    const left = Math.max(1000, deadline - Date.now());
    const got = await eventually(
      settle,
      left,
      `request ${s.id}: ${s.accepted.length} accepted callbacks accounted for`,
    ).catch(async () => (await settle()) ?? { seen: [], dead: [] });
    const seqs = new Set<number>();
    for (const h of got.seen) {
      if (seqs.has(Number(h.seq))) acc.twice++;
      seqs.add(Number(h.seq));
      if (h.outcome === "applied") acc.applied++;
      else if (h.outcome === "late") acc.late++;
      else acc.ignored++;
    }
    acc.deadLettered += got.dead.length;
    acc.missing += Math.max(0, s.accepted.length - got.seen.length - got.dead.length);
  }
  return acc;
}
