import { createServer, type Server } from "node:http";
import { jsonString, type LineFields } from "@ess/config";
import type { CallbackJob } from "@ess/contract";
import { type ApplyResult, pingSeconds } from "@ess/store";
import type { Redis } from "ioredis";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Webhooks } from "./webhooks.js";
import type { ApplyCall, CallbackWorker, WorkerLogger, WorkerObserver } from "./worker.js";

/** A number as pino writes it: null when not finite. */
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : "null");

/** Outcomes of a webhook delivery attempt (the label values of ess_webhook_deliveries_total). */
const WEBHOOK_OUTCOMES = ["delivered", "retry", "failed"] as const;

/**
 * The worker's Prometheus metrics, served by its own listener (WORKER_METRICS_PORT): what only the
 * process applying callbacks knows. Queue-level gauges (depth, oldest waiting) are computed by the
 * gateway's admin /metrics from Redis at scrape time. Labels are bounded (results, partitions).
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly results = new Counter({
    name: "ess_worker_callbacks_total",
    help: "Callback jobs by apply result (applied, ignored, late, duplicate, buffered, ...)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly drained = new Counter({
    name: "ess_worker_reorder_drained_total",
    help: "Callbacks taken out of reorder buffers and applied (or ignored) after their gap closed",
    registers: [this.registry],
  });
  readonly reorderBuffer = new Gauge({
    name: "ess_reorder_buffer_callbacks",
    help: "Callbacks this process put into reorder buffers minus those it drained; sum over workers for the fleet",
    registers: [this.registry],
  });
  readonly lag = new Histogram({
    name: "ess_callback_lag_seconds",
    help: "End-to-end lag of an applied callback: accepted by the gateway → applied by the worker",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: "ess_worker_job_retries_total",
    help: "Job attempts that failed and will be retried",
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: "ess_worker_job_failures_total",
    help: "Jobs that failed for good (attempts exhausted or permanent error)",
    registers: [this.registry],
  });
  readonly stalls = new Counter({
    name: "ess_worker_job_stalls_total",
    help: "Jobs found stalled (their worker died or blocked) and handed to another",
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: "ess_redis_errors_total",
    help: "Redis connection errors seen by this process",
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: "ess_webhook_deliveries_total",
    help: "Webhook delivery attempts by outcome: delivered, retry (failed, will be retried), failed (out of attempts: dead-lettered)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "ess_worker_" });
    // every outcome is exported from the start, so failure ratios read 0 rather than nothing
    for (const outcome of WEBHOOK_OUTCOMES) this.webhookDeliveries.inc({ outcome }, 0);
  }
}

/**
 * Observes every apply the worker makes (result counts, lag, reorder buffer, one log line per job
 * with request id and seq — never the handle, which jobs do not carry).
 */
export function applyMetrics(
  metrics: WorkerMetrics,
  log: WorkerLogger | undefined,
  /** writes log's "job processed" line from its fields as JSON (lineWriter); absent: log.info */
  jobLine?: ((fields: LineFields) => void) | undefined,
): WorkerObserver {
  /** What an apply that started at `now` and answered `res` counts and logs. */
  const observed = ({ requestId, mode, arg }: ApplyCall, res: ApplyResult, now: number) => {
    if (res.result === "buffered") metrics.reorderBuffer.inc();
    if (res.n > 0 && res.result !== "wait") {
      metrics.drained.inc(res.n);
      metrics.reorderBuffer.dec(res.n);
    }
    const job = typeof arg === "number" ? undefined : (arg as CallbackJob);
    if (job && (res.result === "applied" || res.result === "late")) {
      metrics.lag.observe(Math.max(0, (now - job.acceptedAt) / 1000));
    }
    const seq = job?.seq ?? (arg as number);
    if (jobLine) {
      // the fields of the log.info call below, in its order
      const status = job?.status === undefined ? "" : `,"status":${jsonString(job.status)}`;
      jobLine(
        `,"requestId":${jsonString(requestId)},"seq":${jsonNumber(seq)},"mode":${jsonString(mode)}${status},"result":${jsonString(res.result)},"drained":${jsonNumber(res.n)}`,
      );
    } else {
      log?.info({ requestId, seq, mode, status: job?.status, result: res.result, drained: res.n }, "job processed");
    }
  };
  return {
    async apply(call, work): Promise<ApplyResult> {
      const now = Date.now();
      const res = await work();
      metrics.results.inc({ result: res.result });
      observed(call, res, now);
      return res;
    },
    async applyBatch(calls, work): Promise<ApplyResult[]> {
      const now = Date.now();
      const results = await work();
      // the result counter once per result of the batch (a labelled inc hashes its labels)
      const counts = new Map<string, number>();
      for (let i = 0; i < calls.length; i++) {
        const res = results[i] as ApplyResult;
        counts.set(res.result, (counts.get(res.result) ?? 0) + 1);
        observed(calls[i] as ApplyCall, res, now);
      }
      for (const [result, n] of counts) metrics.results.inc({ result }, n);
      return results;
    },
  };
}

/** Counts retries, final failures and stalls from the BullMQ workers' events. */
export function observeWorkers(worker: CallbackWorker, metrics: WorkerMetrics): void {
  for (const w of worker.workers) {
    w.on("failed", (job, err) => {
      if (err?.name === "DelayedError") return;
      const attempts = job?.opts.attempts ?? 1;
      const final = err?.name === "UnrecoverableError" || (job?.attemptsMade ?? attempts) >= attempts;
      if (final) metrics.failures.inc();
      else metrics.retries.inc();
    });
    w.on("stalled", () => metrics.stalls.inc());
  }
}

/**
 * Counts the connection's errors, and measures its round trip (one PING, ess_redis_ping_seconds)
 * when Prometheus scrapes; the gauge is absent while Redis does not answer.
 */
export function observeRedis(redis: Redis, metrics: WorkerMetrics): void {
  redis.on("error", () => metrics.redisErrors.inc());
  new Gauge({
    name: "ess_redis_ping_seconds",
    help: "Round trip of a PING to Redis, measured at scrape time (absent while Redis does not answer)",
    registers: [metrics.registry],
    async collect() {
      const s = await pingSeconds(redis, 1000).catch(() => undefined);
      if (s === undefined) this.reset();
      else this.set(s);
    },
  });
}

/** Counts webhook delivery attempts by outcome from the delivery workers' events. */
export function observeWebhooks(webhooks: Pick<Webhooks, "workers">, metrics: WorkerMetrics): void {
  for (const w of webhooks.workers) {
    w.on("completed", () => metrics.webhookDeliveries.inc({ outcome: "delivered" }));
    w.on("failed", (job, err) => {
      const final = !job || err?.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
      metrics.webhookDeliveries.inc({ outcome: final ? "failed" : "retry" });
    });
  }
}

/**
 * Serves GET /metrics, GET /healthz (alive) and GET /readyz (200 while `ready()` says the Redis
 * connection is up and the process is not stopping, else 503); resolves with the port once listening.
 */
export async function serveMetrics(
  metrics: WorkerMetrics,
  port: number,
  host: string,
  ready: () => boolean = () => true,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method === "GET" && path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    if (req.method === "GET" && path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
      return;
    }
    if (req.method === "GET" && path === "/readyz") {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      res.end(ok ? '{"status":"ready"}' : '{"status":"not ready"}');
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"status":404}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : port };
}
