import { type Config, type Logger, perRequestLogger } from "@ess/config";
import { WebhookAddressPolicy } from "@ess/contract";
import {
  AuditLog,
  type CallbackQueues,
  type DeadLetters,
  ReplicaAck,
  type RequestStore,
  SecretBox,
  WebhookStore,
} from "@ess/store";
import type { Tracing } from "@ess/telemetry";
import type { Redis } from "ioredis";
import { acceptMetrics } from "./accept-metrics.js";
import { observeAll } from "./accept-observer.js";
import { createAdminApp } from "./admin.js";
import { createApp } from "./app.js";
import type { Authenticator } from "./auth/authenticator.js";
import { BacklogMonitor } from "./backlog.js";
import type { GatewayDeps, OperationsDeps } from "./context.js";
import { GatewayMetrics, QueueCatalog } from "./metrics.js";
import { Readiness } from "./ops/readiness.js";
import { registerProbes } from "./probes.js";
import { RateLimiter } from "./rate-limit.js";
import { callbackNodeRoute, type NodeRoute } from "./routes/callback-node.js";
import { acceptTracing } from "./tracing.js";

/** How long a readiness answer is reused before the probe key is written again. */
const READINESS_CACHE_MS = 1000;

/** What the gateway is built on: its Redis connection (role "gateway") and the store over it. */
export interface GatewayParts {
  redis: Redis;
  store: RequestStore;
  queues: CallbackQueues;
  deadLetters: DeadLetters;
  auth: Authenticator;
  log: Logger;
  tracing?: Tracing | undefined;
  /** The gateway's metrics, when main.ts made them before connecting (see watchRedisErrors); default new ones. */
  metrics?: GatewayMetrics | undefined;
  /** The box of the subscriptions' secrets; default the one of WEBHOOK_SECRET (none without it). */
  secretBox?: SecretBox | undefined;
  /** Where unexpected errors go; default the log at error level. */
  logError?: GatewayDeps["logError"];
  /** The callback listener's connections that could send a request now (main.ts counts them). */
  idleConnections?: GatewayDeps["idleConnections"];
}

/** A wired gateway: the two apps, what they were built from, and the parts main.ts stops on SIGTERM. */
export interface WiredGateway {
  deps: GatewayDeps;
  app: ReturnType<typeof createApp>;
  adminApp: ReturnType<typeof createAdminApp>;
  /** the callback route on node:http, offered each request of `app`'s listener first (serveApp's `route`) */
  callbackRoute: NodeRoute;
  metrics: GatewayMetrics;
  readiness: Readiness;
  backlog: BacklogMonitor | undefined;
  /** Aborted on shutdown: open SSE streams end, or server.close() would wait for them. */
  sseShutdown: AbortController;
}

/** Counts and logs the connection's errors (an ioredis connection without an error listener prints them). */
export function watchRedisErrors(redis: Redis, metrics: GatewayMetrics, log: Logger): void {
  redis.on("error", (err) => {
    metrics.redisErrors.inc();
    log.warn({ err: err.message }, "redis connection error");
  });
}

/**
 * Builds the gateway from its configuration: metrics, tracing, readiness, the operations layer (auth,
 * backpressure, access log) and the two apps. One wiring for main.ts and for the in-process gateway
 * of the tests, so that tests run what production runs.
 */
export function wireGateway(config: Config, parts: GatewayParts): WiredGateway {
  const { redis, store, queues, deadLetters, auth, log, tracing } = parts;
  let metrics = parts.metrics;
  if (!metrics) {
    metrics = new GatewayMetrics();
    watchRedisErrors(redis, metrics, log);
  }
  const readiness = new Readiness(redis, READINESS_CACHE_MS, store.keys.readinessProbe());
  registerProbes(metrics.registry, redis, readiness);
  const backlog =
    config.BACKLOG_LIMIT > 0
      ? new BacklogMonitor(redis, store.keys, config.BACKLOG_LIMIT, config.BACKLOG_CHECK_MS, metrics).start()
      : undefined;
  const ops: OperationsDeps = {
    auth,
    metrics,
    catalog: QueueCatalog.ofPartitions(queues),
    backlog,
    rateLimit:
      config.RATE_LIMIT_PER_SECOND > 0
        ? new RateLimiter(config.RATE_LIMIT_PER_SECOND, config.RATE_LIMIT_BURST)
        : undefined,
    accessLog: config.ACCESS_LOG ? perRequestLogger(log) : undefined,
    readiness,
    retryAfterSeconds: config.RETRY_AFTER_SECONDS,
  };
  const sseShutdown = new AbortController();
  const deps: GatewayDeps = {
    ops,
    observe: observeAll(tracing && acceptTracing(tracing, store.keys), acceptMetrics(metrics)),
    store,
    queues,
    deadLetters,
    replayRate: config.DLQ_REPLAY_RATE,
    audit: new AuditLog(redis, store.keys, config.AUDIT_MAX_ENTRIES),
    maxBodyBytes: config.MAX_BODY_BYTES,
    enqueueTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    enqueue: config.ENQUEUE_MODE,
    admitBatchMax: config.ADMIT_BATCH_MAX,
    admitBatchWindowMs: config.ADMIT_BATCH_WINDOW_MS,
    idleConnections: parts.idleConnections,
    replicaAck: config.ACK_REPLICAS > 0 ? new ReplicaAck(redis, config.ACK_REPLICAS, config.ACK_TIMEOUT_MS) : undefined,
    logError:
      parts.logError ??
      ((err: unknown, context: Record<string, unknown>) => log.error({ err, ...context }, "unexpected error")),
    logDebug: (context: Record<string, unknown>, message: string) => log.debug(context, message),
    publicBaseUrl: config.PUBLIC_BASE_URL,
    logWarn: (message: string, context: Record<string, unknown>) => log.warn(context, message),
    // the subscriptions' secrets are sealed under WEBHOOK_SECRET; without it subscribe answers 503
    webhooks: new WebhookStore(
      store,
      parts.secretBox ?? (config.WEBHOOK_SECRET ? SecretBox.fromKeyEncryptionKey(config.WEBHOOK_SECRET) : undefined),
      config.WEBHOOK_LOG_LIMIT,
    ),
    scheduler: {
      webhookRotationGraceMs: config.WEBHOOK_ROTATION_GRACE_SECONDS * 1000,
      forceCancelQuietMs: config.FORCE_CANCEL_QUIET_MS,
      ssePollMs: config.SSE_POLL_MS,
      shutdown: sseShutdown.signal,
      webhookPolicy: new WebhookAddressPolicy(config.WEBHOOK_ALLOW_HOSTS),
    },
  };
  return {
    deps,
    app: createApp(deps),
    adminApp: createAdminApp(deps),
    callbackRoute: callbackNodeRoute(deps),
    metrics,
    readiness,
    backlog,
    sseShutdown,
  };
}
