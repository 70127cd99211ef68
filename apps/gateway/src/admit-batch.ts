import type { AdmitCallback, AdmitResult, Idempotency } from "@ess/store";
import type { GatewayDeps } from "./context.js";

interface Waiting {
  cb: AdmitCallback;
  idempotency?: Idempotency | undefined;
  resolve(result: AdmitResult): void;
  reject(err: unknown): void;
}

/**
 * Admit batching (ENQUEUE_MODE=script, ADMIT_BATCH_MAX > 1): the callbacks of one batch group that
 * reach the admit together share one script call (admit-enqueue-batch) and one job, and each gets its
 * own answer. A batch group (RequestStore.batchGroup) is every partition on a single Redis, one
 * partition on Redis Cluster. "Together" is a group commit per group, with at most `maxOut` script
 * calls of the group out at once, one per partition it spans (RequestStore.batchGroupPartitions: 16
 * on a single Redis by default, 1 on a Cluster, as many calls out per Redis as when every partition
 * batched on its own): a batch is sent at the end of the event-loop turn (setImmediate, after the
 * turn's I/O callbacks) when fewer than `maxOut` calls of its group are out, else as soon as one
 * returns; and at once when it holds `max` callbacks. Under load (the group's last batch held more than
 * one callback) a batch waits `windowMs` from its first callback instead of its turn's end, so that it
 * carries what arrives meanwhile: the per-call and per-job costs (the admit call, BullMQ's fetch and
 * finish of the job, the apply call) are then shared by more callbacks. A batch of one ends the wait for
 * the next, and so does a listener whose every connection waits for an answer (`idleConnections`: a
 * client with a few connections that calls again as soon as it is answered sends nothing more
 * meanwhile, and a wait would only hold it back). Without load a batch therefore holds one callback,
 * sent through admit-enqueue-11 as before, and waits for nothing; under load it holds what arrived in
 * its window (or its event-loop turn), and once `maxOut` calls are out, what arrives until one returns. A
 * callback repeating the request and Idempotency-Key of one in the open batch sends that batch first and
 * opens the next (Redis runs them in order), so a key is decided once per call as without batching.
 * ACK_REPLICAS: one WAIT per batch, on the node that ran it.
 */
export class AdmitBatcher {
  private readonly open = new Map<number, Waiting[]>();
  /** script calls out, per batch group */
  private readonly out = new Map<number, number>();
  private scheduled = false;
  /** the open batches waiting out their window, per batch group */
  private readonly waiting = new Map<number, NodeJS.Timeout>();
  /** groups whose last batch held more than one callback: their next batch waits for its window */
  private readonly loaded = new Set<number>();

  /** script calls a group may have out at once before its next batch waits for one to return */
  readonly maxOut: number;

  constructor(
    private readonly deps: GatewayDeps,
    readonly max: number,
    /** how long a batch under load waits for others (ms); 0: every batch goes at its turn's end */
    readonly windowMs = 0,
  ) {
    this.maxOut = deps.store.batchGroupPartitions();
  }

  /** Admits and enqueues one callback in the open batch of its batch group. */
  submit(cb: AdmitCallback, idempotency?: Idempotency): Promise<AdmitResult> {
    const g = this.deps.store.batchGroupOf(cb.requestId);
    let batch = this.open.get(g);
    if (
      batch &&
      idempotency &&
      batch.some((w) => w.idempotency?.key === idempotency.key && w.cb.requestId === cb.requestId)
    ) {
      this.send(g);
      batch = undefined;
    }
    if (!batch) {
      batch = [];
      this.open.set(g, batch);
    }
    const pending = new Promise<AdmitResult>((resolve, reject) => {
      (batch as Waiting[]).push({ cb, idempotency, resolve, reject });
    });
    // every connection waits for an answer: nothing more can join, so a waiting batch goes now
    const nothingMore = this.deps.idleConnections?.() === 0;
    if (batch.length >= this.max || (nothingMore && this.waiting.has(g))) this.send(g);
    else if (batch.length === 1 && this.windowMs > 0 && this.loaded.has(g) && !nothingMore) {
      this.waiting.set(
        g,
        setTimeout(() => {
          this.waiting.delete(g);
          // with maxOut calls out it goes when one of them returns
          if ((this.out.get(g) ?? 0) < this.maxOut) this.send(g);
        }, this.windowMs),
      );
    } else if (!this.scheduled && !this.waiting.has(g)) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        // a group with maxOut calls out sends its batch when one of them returns
        for (const q of [...this.open.keys()])
          if (!this.waiting.has(q) && (this.out.get(q) ?? 0) < this.maxOut) this.send(q);
      });
    }
    return pending;
  }

  private send(g: number): void {
    const timer = this.waiting.get(g);
    if (timer) {
      clearTimeout(timer);
      this.waiting.delete(g);
    }
    const batch = this.open.get(g);
    this.open.delete(g);
    if (!batch || batch.length === 0) return;
    if (batch.length > 1) this.loaded.add(g);
    else this.loaded.delete(g);
    this.deps.observe?.batch?.(batch.length);
    this.out.set(g, (this.out.get(g) ?? 0) + 1);
    void this.run(batch).finally(() => {
      const left = (this.out.get(g) ?? 1) - 1;
      if (left > 0) this.out.set(g, left);
      else this.out.delete(g);
      // a batch held back while maxOut calls were out goes now (one opened since waits for its turn's end)
      if (left === this.maxOut - 1 && this.open.has(g)) this.send(g);
    });
  }

  private async run(batch: Waiting[]): Promise<void> {
    const { store, queues, replicaAck } = this.deps;
    let results: (AdmitResult | Error)[];
    try {
      if (batch.length === 1) {
        const only = batch[0] as Waiting;
        results = [await store.admitAndEnqueue(queues, only.cb, only.idempotency).catch((err: Error) => err)];
      } else {
        results = await store.admitAndEnqueueBatch(queues, batch);
      }
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    const ok = results.filter((r): r is AdmitResult => !(r instanceof Error));
    if (replicaAck && ok.length > 0) {
      // ACK_REPLICAS: 200 only once the replicas have it
      try {
        await replicaAck.acknowledgeAdmits(store.keys, (batch[0] as Waiting).cb.requestId, ok);
      } catch (err) {
        results = results.map((r) => (r instanceof Error ? r : (err as Error)));
      }
    }
    batch.forEach((w, i) => {
      const r = results[i] as AdmitResult | Error;
      if (r instanceof Error) w.reject(r);
      else w.resolve(r);
    });
  }
}

const batchers = new WeakMap<GatewayDeps, AdmitBatcher>();

/** The admit batcher of a gateway (one per deps), or undefined when batching is off. */
export function admitBatcher(deps: GatewayDeps): AdmitBatcher | undefined {
  const max = deps.admitBatchMax ?? 1;
  if (max <= 1 || (deps.enqueue ?? "script") !== "script") return undefined;
  let b = batchers.get(deps);
  if (!b) {
    b = new AdmitBatcher(deps, max, deps.admitBatchWindowMs ?? 0);
    batchers.set(deps, b);
  }
  return b;
}
