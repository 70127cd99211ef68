import { EssJobClient } from "@ess/client";
import type { CallbackStatus } from "@ess/domain";
import type { DeadLetters, RequestStore } from "@ess/store";
import { eventually } from "@ess/testing";
import { pool } from "./load.js";

/** One executionStatus call a job made (all its attempts share one Idempotency-Key). */
export interface ClientCall {
  status: CallbackStatus;
  /** unique per request: how the call is found in the history */
  message: string;
  /** the client got a 200 */
  acknowledged: boolean;
  /** why the client gave up, when it did */
  error?: string;
}

/** A registered request and the calls its job made. */
export interface ClientRun {
  id: string;
  handle: string;
  calls: ClientCall[];
}

/** Counts of a client run: each acknowledged call must be in its request's history exactly once. */
export interface ClientAccounting {
  calls: number;
  acknowledged: number;
  /** acknowledged calls with exactly one history entry (applied, late or ignored) */
  applied: number;
  /** calls (acknowledged or not) with more than one history entry: must be 0 */
  duplicates: number;
  /** acknowledged calls with no history entry and no dead letter: must be 0 */
  lost: number;
  deadLettered: number;
  /** calls the client gave up on (no 200 after all its attempts) */
  gaveUp: number;
  /** answers lost on purpose after the gateway had answered (the client retried them) */
  dropped: number;
  /** requests that had not applied all their seqs by the deadline, with their fields (must be none) */
  unsettled: string[];
}

/**
 * Drives jobs as packages/client does: per request `updates` UPDATEs at once, then `final`, each a
 * call retried with one Idempotency-Key through 409/429/5xx and dropped connections. `base()` is read
 * on every attempt (a gateway restarted on a new port). A fraction `dropRate` of the answers is
 * thrown away after the gateway sent it, as a connection dropped before the client read it.
 */
export async function driveClients(
  base: () => string,
  runs: ClientRun[],
  opts: {
    updates: number;
    final: CallbackStatus;
    concurrency: number;
    attempts: number;
    dropRate: number;
    onProgress?: (n: number) => void;
  },
): Promise<{ dropped: number }> {
  let done = 0;
  let dropped = 0;
  const PLACEHOLDER = "http://gateway.invalid";
  const flakyFetch: typeof fetch = async (input, init) => {
    const url = String(input).replace(PLACEHOLDER, base());
    const res = await fetch(url, init);
    if (Math.random() < opts.dropRate) {
      await res.arrayBuffer().catch(() => {});
      dropped++;
      throw new TypeError("fetch failed: connection dropped before the answer was read");
    }
    return res;
  };
  const call = async (client: EssJobClient, run: ClientRun, status: CallbackStatus, n: number) => {
    const c: ClientCall = { status, message: `${status} ${n}`, acknowledged: false };
    run.calls.push(c);
    try {
      await client.reportStatus(status, c.message);
      c.acknowledged = true;
    } catch (err) {
      c.error = (err as Error).message;
    }
    opts.onProgress?.(++done);
  };
  await pool(runs, opts.concurrency, async (run) => {
    const client = new EssJobClient({
      baseUrl: PLACEHOLDER,
      requestId: run.id,
      requestHandle: run.handle,
      attempts: opts.attempts,
      backoffMs: 100,
      timeoutMs: 10000,
      fetch: flakyFetch,
    });
    await Promise.all(Array.from({ length: opts.updates }, (_, n) => call(client, run, "UPDATE", n)));
    await call(client, run, opts.final, opts.updates);
  });
  return { dropped };
}

/**
 * Waits until every request has applied all it was given (applied >= seq, acknowledged calls present),
 * then counts, per call, its history entries (by its unique message) and dead letters.
 */
export async function accountCalls(
  store: RequestStore,
  deadLetters: DeadLetters,
  runs: ClientRun[],
  dropped: number,
  timeoutMs = 90000,
): Promise<ClientAccounting> {
  const acc: ClientAccounting = {
    calls: 0,
    acknowledged: 0,
    applied: 0,
    duplicates: 0,
    lost: 0,
    deadLettered: 0,
    gaveUp: 0,
    dropped,
    unsettled: [],
  };
  const deadline = Date.now() + timeoutMs;
  for (const run of runs) {
    const look = async () => {
      const stored = await store.read(run.id);
      const entries = (stored?.history ?? []).filter(
        (h) => h.outcome === "applied" || h.outcome === "ignored" || h.outcome === "late",
      );
      const dead = (await deadLetters.list({ requestId: run.id }, { limit: 1000 })).items.filter(
        (e) => e.name === "cb",
      );
      const count = new Map<string, number>();
      for (const m of [
        ...entries.map((h) => String(h.message)),
        ...dead.map((d) => String((d.payload as { message?: string }).message)),
      ]) {
        count.set(m, (count.get(m) ?? 0) + 1);
      }
      const settled =
        Number(stored?.fields.applied ?? 0) >= Number(stored?.fields.seq ?? 0) &&
        run.calls.every((c) => !c.acknowledged || (count.get(c.message) ?? 0) > 0);
      return { settled, count, dead: dead.length, fields: stored?.fields };
    };
    const got = await eventually(
      async () => {
        const r = await look();
        return r.settled ? r : null;
      },
      Math.max(1000, deadline - Date.now()),
      `request ${run.id} settled`,
    ).catch(() => look());
    if (!got.settled) {
      const f = got.fields ?? {};
      acc.unsettled.push(`${run.id} (state ${f.state}, seq ${f.seq}, applied ${f.applied})`);
    }
    acc.deadLettered += got.dead;
    for (const c of run.calls) {
      const n = got.count.get(c.message) ?? 0;
      acc.calls++;
      if (n > 1) acc.duplicates++;
      if (!c.acknowledged) {
        acc.gaveUp++;
        continue;
      }
      acc.acknowledged++;
      if (n === 0) acc.lost++;
      else if (n === 1) acc.applied++;
    }
  }
  return acc;
}

/** One line with the counts, for the test output. */
export function formatCalls(name: string, acc: ClientAccounting): string {
  return (
    `${name}: calls ${acc.calls}, acknowledged ${acc.acknowledged}, applied once ${acc.applied}, ` +
    `duplicates ${acc.duplicates}, lost ${acc.lost}, dead-lettered ${acc.deadLettered}, gave up ${acc.gaveUp}, ` +
    `answers dropped and retried ${acc.dropped}` +
    (acc.unsettled.length > 0 ? `; unsettled ${acc.unsettled.length}: ${acc.unsettled.slice(0, 5).join(", ")}` : "")
  );
}
