import type { RequestState } from "@ess/domain";
import { type DeadLetters, RequestIndex, type RequestStore } from "@ess/store";
import type { BacklogMonitor } from "../backlog.js";
import type { QueueCatalog } from "../metrics.js";
import type { Readiness } from "../ops/readiness.js";

/** One partition's line of the overview strip. */
export interface PartitionHealth {
  partition: number;
  /** callbacks waiting or delayed */
  backlog: number;
  active: number;
  /** failed callback jobs not yet moved to the dead letters */
  failed: number;
  /** age of the oldest waiting callback, seconds (the lag) */
  lagSeconds: number;
  /** webhook deliveries waiting their turn; retrying after a failed attempt (delayed: their backoff); failed */
  webhookBacklog: number;
  webhookRetrying: number;
  webhookFailed: number;
  health: "ok" | "lagging" | "failing";
}

/** What the overview shows, read from Redis at most once per interval whoever looks. */
export interface OverviewSnapshot {
  at: number;
  states: Record<RequestState, number>;
  deadLetters: number;
  /** dead letters recorded in the last hour and in the last GROWTH_WINDOW_MS */
  deadLettersLastHour: number;
  /** change of the dead-letter count since the previous snapshot */
  deadLetterDelta: number;
  partitions: PartitionHealth[];
  totals: {
    backlog: number;
    lagSeconds: number;
    webhookFailed: number;
    webhookRetrying: number;
    webhookBacklog: number;
  };
  /** the backpressure limit (0: none) */
  backlogLimit: number;
  /** this gateway's readiness (as /readyz answers it): Redis answering, scripts loaded, writes accepted */
  readiness?: { ready: boolean; checks: Record<string, string> };
  /** set when this snapshot could not be read (the previous one is shown with it) */
  error?: string;
}

/** The queue states the overview reads. */
const OVERVIEW_STATES = ["wait", "active", "delayed", "prioritized", "failed"] as const;

/** A partition lags when its oldest waiting callback is older than this. */
const LAG_WARN_SECONDS = 30;
const HOUR_MS = 3600 * 1000;

/**
 * The overview's numbers, shared by every viewer: refreshed from Redis at most once per `intervalMs`
 * (concurrent viewers wait for the one refresh in flight), so polling costs Redis nothing per viewer.
 * A refresh is a few commands per partition: the index's per-state counts, the queues' job counts
 * and oldest waiting job, the dead-letter counts.
 */
export class OverviewSnapshots {
  private last: OverviewSnapshot | undefined;
  private refreshing: Promise<OverviewSnapshot> | undefined;
  /** Redis reads made (for tests: viewers share them). */
  refreshes = 0;

  constructor(
    private readonly deps: {
      store: RequestStore;
      deadLetters: DeadLetters;
      catalog?: QueueCatalog | undefined;
      backlog?: BacklogMonitor | undefined;
      readiness?: Readiness | undefined;
    },
    readonly intervalMs: number,
  ) {}

  /** The current snapshot: the last one while it is younger than the interval, else a new one. */
  async get(now = Date.now()): Promise<OverviewSnapshot> {
    if (this.last && now - this.last.at < this.intervalMs) return this.last;
    this.refreshing ??= this.read(now).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async read(now: number): Promise<OverviewSnapshot> {
    this.refreshes++;
    try {
      const { store, deadLetters, catalog } = this.deps;
      const partitions = store.keys.partitions;
      const rows: PartitionHealth[] = Array.from({ length: partitions }, (_, p) => ({
        partition: p,
        backlog: 0,
        active: 0,
        failed: 0,
        lagSeconds: 0,
        webhookBacklog: 0,
        webhookRetrying: 0,
        webhookFailed: 0,
        health: "ok" as const,
      }));
      const queues = catalog?.queues;
      const queueReads = (catalog?.list() ?? [])
        .filter((q) => q.kind === "partition" || q.kind === "webhooks")
        .map(async ({ queue, label, kind }) => {
          const p = Number(label.replace(/^\D+/, ""));
          const row = rows[p];
          if (!row || !queues) return;
          const { counts, oldestWaitingAt } = await queues.counts(queue, OVERVIEW_STATES);
          const waiting = counts.wait + counts.delayed + counts.prioritized;
          if (kind === "webhooks") {
            row.webhookBacklog = counts.wait + counts.prioritized;
            row.webhookRetrying = counts.delayed;
            row.webhookFailed = counts.failed;
            return;
          }
          row.backlog = waiting;
          row.active = counts.active;
          row.failed = counts.failed;
          if (counts.wait > 0 && oldestWaitingAt) {
            row.lagSeconds = Math.max(0, Math.round((now - oldestWaitingAt) / 1000));
          }
        });
      const [readiness, states, dead, lastHour] = await Promise.all([
        this.deps.readiness?.check(),
        new RequestIndex(store.redis, store.keys).countByState(),
        deadLetters.count(),
        deadLetters.countMatching({ from: now - HOUR_MS }),
        Promise.all(queueReads),
      ]);
      const limit = this.deps.backlog?.limit ?? 0;
      for (const row of rows) {
        if (row.failed > 0) row.health = "failing";
        else if (row.lagSeconds > LAG_WARN_SECONDS || (limit > 0 && row.backlog > limit)) row.health = "lagging";
      }
      const snap: OverviewSnapshot = {
        at: now,
        states,
        deadLetters: dead,
        deadLettersLastHour: lastHour,
        deadLetterDelta: this.last ? dead - this.last.deadLetters : 0,
        partitions: rows,
        totals: {
          backlog: rows.reduce((s, r) => s + r.backlog, 0),
          lagSeconds: rows.reduce((s, r) => Math.max(s, r.lagSeconds), 0),
          webhookFailed: rows.reduce((s, r) => s + r.webhookFailed, 0),
          webhookRetrying: rows.reduce((s, r) => s + r.webhookRetrying, 0),
          webhookBacklog: rows.reduce((s, r) => s + r.webhookBacklog, 0),
        },
        backlogLimit: limit,
        ...(readiness ? { readiness } : {}),
      };
      this.last = snap;
      return snap;
    } catch (err) {
      // Redis away: the last numbers, marked stale, and the next viewer tries again after the interval
      const message = err instanceof Error ? err.message : String(err);
      if (!this.last) throw err;
      this.last = { ...this.last, at: now, error: message };
      return this.last;
    }
  }
}
