import { postJson, registerRequest } from "./http.js";

/** Runs tasks with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  });
  await Promise.all(runners);
}

/** What the load driver saw for one request. */
export interface Sent {
  id: string;
  handle: string;
  /** statuses answered 200, in the order they were answered */
  accepted: string[];
  /** other outcomes (HTTP status or network error) */
  rejected: string[];
}

/** Registers `count` requests with ids from `firstId`, spread over the given gateways. */
export async function registerMany(bases: string[], firstId: number, count: number): Promise<Sent[]> {
  const out: Sent[] = [];
  await pool(
    Array.from({ length: count }, (_, i) => String(firstId + i)),
    16,
    async (id) => {
      const r = await registerRequest(bases[Number(id) % bases.length] ?? "", id);
      out.push({ id, handle: r.requestHandle, accepted: [], rejected: [] });
    },
  );
  return out.sort((a, b) => Number(a.id) - Number(b.id));
}

/**
 * Per request, posts `updates` UPDATEs then `final`, one after the other; requests run in parallel
 * (`concurrency` in flight) across the gateways. Network errors are recorded, not thrown.
 */
export async function drive(
  bases: () => string[],
  sent: Sent[],
  opts: {
    updates: number;
    final: (s: Sent) => string;
    concurrency: number;
    /** post a request's UPDATEs all at once (their order is then the gateway's), then the final */
    parallelUpdates?: boolean;
    /** like a real client: retry after a network error or a 503, up to this many times (100 ms apart) */
    retries?: number;
    onProgress?: (n: number) => void;
  },
): Promise<void> {
  let done = 0;
  const send = async (s: Sent, status: string, n: number) => {
    for (let attempt = 0; ; attempt++) {
      const gateways = bases();
      const base = gateways[(Number(s.id) + n) % gateways.length] ?? "";
      let outcome: string;
      try {
        const res = await postJson(`${base}/ess/rest/scheduler/v1/requests/${s.id}/executionStatus`, {
          requestHandle: s.handle,
          status,
          statusMessage: `${status} ${n}`,
        });
        await res.arrayBuffer();
        if (res.status === 200) {
          s.accepted.push(status);
          break;
        }
        outcome = String(res.status);
        if (res.status !== 503) {
          s.rejected.push(outcome);
          break;
        }
      } catch (err) {
        outcome = (err as Error).message;
      }
      if (attempt >= (opts.retries ?? 0)) {
        s.rejected.push(outcome);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    opts.onProgress?.(++done);
  };
  await pool(sent, opts.concurrency, async (s) => {
    if (opts.parallelUpdates) {
      await Promise.all(Array.from({ length: opts.updates }, (_, n) => send(s, "UPDATE", n)));
    } else {
      for (let n = 0; n < opts.updates; n++) await send(s, "UPDATE", n);
    }
    await send(s, opts.final(s), opts.updates);
  });
}

/** The load the fault suites drive: per request 8 UPDATEs at once, then SUCCESS; 24 requests in flight. */
export const FAULT_LOAD = { updates: 8, final: () => "SUCCESS", concurrency: 24, parallelUpdates: true } as const;

/** The state a request ends in after the accepted statuses (UPDATEs, then one final). */
export const FINAL_STATE: Record<string, string> = {
  SUCCESS: "SUCCEEDED",
  WARNING: "WARNING",
  ERROR: "ERROR",
  BUSINESS_ERROR: "ERROR",
  CANCEL: "CANCELLED",
  PAUSE: "PAUSED",
  SUSPEND: "ERROR_MANUAL_RECOVERY",
  UPDATE: "RUNNING",
};
