import { type CallbackQueues, DEAD_LETTER_QUEUE, type QueueRef, WEBHOOK_QUEUE } from "@ess/store";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A queue shown on the dashboard and measured on scrape; `kind` groups partitions and dead letters. */
export interface CatalogQueue {
  /** the queue by name: its counts are read with a script, its Queue object is built only for the dashboard */
  queue: QueueRef;
  /** Short, unique, bounded label: "p0".."pN", "webhooks-p0".., "ops". */
  label: string;
  kind: "partition" | "webhooks" | "ops" | "dead-letter";
  /** Shown on the dashboard. */
  title: string;
  description: string;
}

/**
 * The queues the operator sees: every partition queue, and whatever else is added (the dead-letter
 * queue). Adding a queue is one call; the dashboard and the metrics follow.
 */
export class QueueCatalog {
  private readonly entries: CatalogQueue[] = [];
  private readonly listeners: ((e: CatalogQueue) => void)[] = [];

  /** `queues` reads the counts and builds the Queue objects of the dashboard. */
  constructor(readonly queues: CallbackQueues) {}

  /** Every partition's callback and webhook queue, and the ops queue (bulk replays). */
  static ofPartitions(queues: CallbackQueues): QueueCatalog {
    const catalog = new QueueCatalog(queues);
    for (let p = 0; p < queues.keys.partitions; p++) {
      const title = `partition ${p}`;
      catalog.add({
        queue: queues.ref(p),
        label: `p${p}`,
        kind: "partition",
        title,
        description: `callbacks of ${title}`,
      });
    }
    for (let p = 0; p < queues.keys.partitions; p++) {
      const [label, title] = [`webhooks-p${p}`, `webhooks ${p}`];
      catalog.add({
        queue: queues.ref(p, WEBHOOK_QUEUE),
        label,
        kind: "webhooks",
        title,
        description: `webhook deliveries of partition ${p}`,
      });
    }
    catalog.add({
      queue: queues.opsRef(),
      label: "ops",
      kind: "ops",
      title: "operations",
      description: "bulk dead-letter replays",
    });
    for (let p = 0; p < queues.keys.partitions; p++) {
      const [label, title] = [`dead-letters-p${p}`, `dead letters ${p}`];
      const description = `dead letters of partition ${p} (a view: replay and purge through the admin API or the CLI)`;
      catalog.add({ queue: queues.ref(p, DEAD_LETTER_QUEUE), label, kind: "dead-letter", title, description });
    }
    return catalog;
  }

  /** Adds a queue to the dashboard and the metrics. */
  add(entry: CatalogQueue): void {
    this.entries.push(entry);
    for (const l of this.listeners) l(entry);
  }

  list(): readonly CatalogQueue[] {
    return this.entries;
  }

  /** Calls fn for every queue, now and whenever one is added. */
  each(fn: (e: CatalogQueue) => void): void {
    for (const e of this.entries) fn(e);
    this.listeners.push(fn);
  }
}

const QUEUE_STATES = ["wait", "active", "delayed", "prioritized", "failed"] as const;

/**
 * The gateway's Prometheus metrics. Labels are bounded: operation names from the access table,
 * callback statuses, answer codes, queue labels — never request ids.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: "ess_http_requests_total",
    help: "HTTP requests answered, by listener, operation and status code",
    labelNames: ["listener", "operation", "code"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "ess_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by operation",
    labelNames: ["operation"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly callbacks = new Counter({
    name: "ess_callbacks_total",
    help: "executionStatus callbacks answered, by callback status (unknown when the body was not read) and status code",
    labelNames: ["status", "code"] as const,
    registers: [this.registry],
  });
  readonly admitSeconds = new Histogram({
    name: "ess_admit_duration_seconds",
    help: "Time of the admit script (handle check, sequence number) per callback",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly admitBatch = new Histogram({
    name: "ess_admit_batch_callbacks",
    help: "Callbacks per admit script call with admit batching (ADMIT_BATCH_MAX, ADMIT_BATCH_WINDOW_MS); the admitted ones of a call share one job",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly enqueueSeconds = new Histogram({
    name: "ess_enqueue_duration_seconds",
    help: "Time to add an admitted callback to its partition queue",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: "ess_redis_errors_total",
    help: "Redis connection errors and commands that failed because Redis was unreachable",
    registers: [this.registry],
  });
  readonly redisOutOfMemory = new Counter({
    name: "ess_redis_out_of_memory_total",
    help: "Requests answered 503 because Redis refused a write at maxmemory (maxmemory-policy noeviction)",
    registers: [this.registry],
  });
  readonly rejections = new Counter({
    name: "ess_backpressure_rejections_total",
    help: "Requests refused before doing work, by reason (redis_unavailable, backlog, rate_limit)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly queueJobs = new Gauge({
    name: "ess_queue_jobs",
    help: "Jobs in a queue by state (read from Redis at scrape time)",
    labelNames: ["queue", "state"] as const,
    registers: [this.registry],
  });
  readonly oldestWaiting = new Gauge({
    name: "ess_queue_oldest_waiting_age_seconds",
    help: "Age of the oldest job waiting in a queue; 0 when none waits (read from Redis at scrape time)",
    labelNames: ["queue"] as const,
    registers: [this.registry],
  });
  readonly deadLetters = new Gauge({
    name: "ess_dead_letter_jobs",
    help: "Jobs held in the dead-letter queues plus failed jobs not yet moved there (read at scrape time)",
    registers: [this.registry],
  });
  readonly backlogCached = new Gauge({
    name: "ess_backlog_cached_jobs",
    help: "The gateway's cached backlog (waiting + delayed) per partition queue, as used for backpressure",
    labelNames: ["queue"] as const,
    registers: [this.registry],
  });
  readonly scrapeErrors = new Counter({
    name: "ess_metrics_scrape_errors_total",
    help: "Scrapes whose queue gauges could not be read from Redis",
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "ess_gateway_" });
  }

  /**
   * Reads the queue-level gauges from Redis (one script call per queue, at scrape time only).
   * `deadLetterCount` counts the dead-letter store (entries moved out of the queues).
   */
  async refreshQueues(catalog: QueueCatalog, now = Date.now(), deadLetterCount?: () => Promise<number>): Promise<void> {
    let dead = deadLetterCount ? await deadLetterCount() : 0;
    await Promise.all(
      catalog.list().map(async ({ queue, label, kind }) => {
        const { counts, oldestWaitingAt } = await catalog.queues.counts(queue, QUEUE_STATES);
        for (const s of QUEUE_STATES) this.queueJobs.set({ queue: label, state: s }, counts[s]);
        // the dead-letter queues mirror the store counted above; elsewhere, failed jobs not yet moved
        if (kind !== "dead-letter") dead += counts.failed;
        const age = counts.wait > 0 && oldestWaitingAt ? Math.max(0, (now - oldestWaitingAt) / 1000) : 0;
        this.oldestWaiting.set({ queue: label }, age);
      }),
    );
    this.deadLetters.set(dead);
  }

  /** Content type of the exposition format. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
