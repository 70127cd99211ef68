import { WebhookAddressPolicy } from "@ess/contract";
import { z } from "zod";
import { LOG_LEVELS } from "./logger.js";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** Every environment variable the processes read, with its default. Documented in the README. */
export const configSchema = z.object({
  // every process: Redis and key layout
  /** Redis connection URL (redis:// or rediss://). */
  REDIS_URL: z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL"),
  /** Prefix of every Redis key; lets several deployments (or tests) share one Redis. */
  KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,32}$/, "must be 1-32 characters of A-Z a-z 0-9 _ . -")
    .default("ess"),
  /** Number of partitions (queues and hash tags); fixed for the life of a deployment. */
  PARTITIONS: int(1, 1024).default(16),

  // every process: logs and shutdown
  /** Log level (fatal, error, warn, info, debug). */
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  /** "false" turns off the one-log-line-per-request (gateway) and per-job (worker) info logs. */
  ACCESS_LOG: bool.default(true),
  /** Seconds the processes wait for in-flight work on SIGTERM before exiting. */
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 600).default(20),

  // gateway and worker: requests, jobs and the records kept in Redis
  /** Attempts per callback job before it goes to the dead-letter queue. */
  JOB_ATTEMPTS: int(1, 100).default(8),
  /** Base of the exponential backoff between attempts, in ms (with jitter). */
  JOB_BACKOFF_MS: int(1, 600000).default(250),
  /** History entries kept per request. */
  HISTORY_LIMIT: int(1, 10000).default(50),
  /** How long a sequence gap may stay open (callback missing) before it is skipped, in ms. */
  GAP_TIMEOUT_MS: int(10, 86400000).default(30000),
  /** Terminal requests (and their history) expire this many seconds after they end. */
  RETENTION_SECONDS: int(60, 31536000).default(7 * 86400),
  /** Approximate length cap of each partition's event stream. */
  EVENTS_MAXLEN: int(100, 100000000).default(100000),
  /** Idempotency-Key records are kept this many seconds. */
  IDEMPOTENCY_TTL_SECONDS: int(1, 604800).default(86400),

  // gateway: listeners and HTTP
  /** Gateway HTTP port. */
  PORT: int(0, 65535).default(8080),
  /** Gateway bind address. */
  HOST: z.string().min(1).default("0.0.0.0"),
  /** Admin listener port (dead letters, metrics, dashboard); keep it off the network the fleet reaches. */
  ADMIN_PORT: int(0, 65535).default(8081),
  /** Admin listener bind address. */
  ADMIN_HOST: z.string().min(1).default("127.0.0.1"),
  /** Largest accepted request body, in bytes (413 above). */
  MAX_BODY_BYTES: int(256, 1048576).default(16384),
  /** Gateway: absolute http(s) URL (origin, optional path prefix) that Location and links[].href are built on; unset: the request's Host. */
  PUBLIC_BASE_URL: z
    .url({
      protocol: /^https?$/,
      hostname: z.regexes.hostname,
      normalize: true,
      error: "must be an absolute http(s) URL",
    })
    .refine((u) => !/[?#]/.test(u), "must not carry a query or fragment")
    .transform((u) => u.replace(/\/+$/, ""))
    .optional(),
  /** Gateway: a client must send its whole request head within this many seconds (408 and close otherwise). */
  HTTP_HEADERS_TIMEOUT_SECONDS: int(1, 600).default(10),
  /** Gateway: a client must send its whole request (head and body) within this many seconds (408 and close otherwise). */
  HTTP_REQUEST_TIMEOUT_SECONDS: int(1, 3600).default(30),
  /** Gateway: an idle keep-alive connection is closed after this many seconds (keep it above a load balancer's idle timeout). */
  HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: int(1, 600).default(5),

  // gateway: the callback path to Redis
  /** Gateway: how long one Redis command may take before the call is answered 503. */
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60000).default(2000),
  /** Gateway: "script" = admit and BullMQ's add in one Lua script (one round trip); "queue" = admit, then Queue.add. */
  ENQUEUE_MODE: z.enum(["script", "queue"]).default("script"),
  /**
   * Gateway, ENQUEUE_MODE=script: callbacks of one partition that reach the admit in the same event-loop
   * turn share one script call and one job, up to this many; 1 = every callback on its own.
   */
  ADMIT_BATCH_MAX: int(1, 1000).default(64),
  /**
   * Gateway, batching under load: when the last batch of a batch group held more than one callback, the
   * group's next batch waits up to this long (or until ADMIT_BATCH_MAX) for others to join it. After a
   * batch of one (no load), or while every connection of the listener waits for an answer, a batch is
   * sent at the end of its event-loop turn and waits for nothing. 0 = every batch at the end of its turn.
   */
  ADMIT_BATCH_WINDOW_MS: int(0, 100).default(2),
  /** Gateway: ioredis auto-pipelining (callbacks arriving in one event-loop tick share one Redis write). */
  REDIS_AUTO_PIPELINING: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"),

  // gateway: authentication
  /** "true" lets the gateway run with no credentials configured (every caller gets every role); local use only. */
  ALLOW_ANONYMOUS: bool.default(false),
  /** HTTP Basic users, comma-separated "name:role+role:secret"; secret = scrypt hash (npm run hash-secret) or a password. */
  AUTH_USERS: z.string().default(""),
  /** Bearer tokens, comma-separated "label:role+role:secret"; secret = sha256$<hex> (npm run hash-secret) or the token. */
  AUTH_TOKENS: z.string().default(""),
  /** Gateway: Basic-password checks (scrypt) run at once at most; the rest wait in a bounded, per-user fair queue. */
  AUTH_SCRYPT_CONCURRENCY: int(1, 64).default(2),
  /** Gateway: Basic-password checks that may wait for a slot; past it a caller gets 429 with Retry-After. */
  AUTH_SCRYPT_QUEUE: int(1, 100000).default(64),
  /** Gateway: a wrong Basic credential is refused without a new scrypt for this many seconds; 0 turns it off. */
  AUTH_FAILURE_CACHE_SECONDS: int(0, 86400).default(60),
  /** Gateway: new Basic-password checks one source address may have in progress; past it 429; 0 turns it off. */
  AUTH_SOURCE_CHECKS: int(0, 10000).default(1),
  /** Gateway: wrong Basic passwords per source address per AUTH_FAILURE_CACHE_SECONDS (60 s when 0) before its new checks get 429; 0 turns it off. */
  AUTH_SOURCE_FAILURES: int(0, 1000000).default(10),

  // gateway: backpressure
  /** Per-credential request rate limit in requests per second (429 above); 0 turns it off. */
  RATE_LIMIT_PER_SECOND: int(0, 1000000).default(0),
  /** Burst allowance of the per-credential rate limit (bucket size); 0 means equal to RATE_LIMIT_PER_SECOND. */
  RATE_LIMIT_BURST: int(0, 10000000).default(0),
  /** Waiting callbacks per partition past which new callbacks get 503 + Retry-After; 0 turns it off. */
  BACKLOG_LIMIT: int(0, 100000000).default(100000),
  /** How often the gateway refreshes its cached per-partition backlog counts, in ms. */
  BACKLOG_CHECK_MS: int(50, 60000).default(1000),
  /** Retry-After (seconds) sent with 503 (overload, Redis unreachable) and 429 answers. */
  RETRY_AFTER_SECONDS: int(1, 3600).default(1),

  // gateway: scheduler side
  /** forceCancel is refused until a CANCELLING request has been quiet this long (since CANCELLING or its last check-in), ms. */
  FORCE_CANCEL_QUIET_MS: int(0, 7 * 86400000).default(30 * 60000),
  /** Gateway: how often an idle SSE connection (GET /gateway/v1/events) polls the event streams, ms. */
  SSE_POLL_MS: int(20, 10000).default(250),

  // worker: processing
  /**
   * Worker: callback jobs processed at once per partition queue. The worker holds every job in flight (a batch
   * job carries tens of callbacks), so this bounds its memory; Redis applies one script at a time, so more jobs
   * at once did not drain a large backlog faster (BENCHMARKS, "Process memory").
   */
  WORKER_CONCURRENCY: int(1, 1000).default(4),
  /** Worker: which partitions this process serves ("all" or a list like "0-7,12"). */
  WORKER_PARTITIONS: z.string().default("all"),
  /**
   * Worker: a job's lock, renewed every half of it. A job whose worker died is taken over at the first
   * stalled check after the lock ran out: at most WORKER_LOCK_MS + WORKER_STALLED_INTERVAL_MS after the
   * death, while the later callbacks of its request wait. A worker blocked (event loop or Redis link)
   * longer than half of it loses its locks: its jobs run again, harmlessly (seq-idempotent apply).
   */
  WORKER_LOCK_MS: int(1000, 600000).default(6000),
  /** Worker: how often orphaned (stalled) jobs are looked for (one cheap script per partition per interval). */
  WORKER_STALLED_INTERVAL_MS: int(500, 600000).default(1500),
  /** Worker: port of its own metrics listener (/metrics, /healthz); 0 picks a free port. */
  WORKER_METRICS_PORT: int(0, 65535).default(9464),
  /** Worker: bind address of its metrics listener. */
  WORKER_METRICS_HOST: z.string().min(1).default("127.0.0.1"),

  // worker: request timeouts
  /** What a passed requestTimeout does: "mark" (isTimedOut=true, state kept, as ESS) or "error" (ERROR, errorType TIMEOUT). */
  TIMEOUT_POLICY: z.enum(["mark", "error"]).default("mark"),
  /** Worker: how often it sweeps its partitions for requests past their requestTimeout, ms. */
  TIMEOUT_SWEEP_MS: int(50, 600000).default(1000),

  // dead letters (sweep and purge: worker; replay rate: gateway and CLI)
  /** Worker: how often failed jobs are swept into the dead letters (catches a crash mid-move). */
  DLQ_SWEEP_INTERVAL_MS: int(100, 3600000).default(15000),
  /** Dead letters older than this are purged (checked hourly). */
  DLQ_RETENTION_SECONDS: int(60, 31536000).default(14 * 86400),
  /** Bulk replays: dead letters replayed per second at most (live callbacks keep priority). */
  DLQ_REPLAY_RATE: int(1, 100000).default(200),
  /** Gateway, worker and CLI: operator audit log entries kept (the oldest go first); set it the same everywhere. */
  AUDIT_MAX_ENTRIES: int(100, 10000000).default(100000),

  // webhooks (subscriptions: gateway; deliveries: worker)
  /**
   * Gateway and worker: key-encryption key of the webhook subscriptions' signing secrets (stored AES-256-GCM
   * encrypted under a key derived from it); without it the gateway refuses subscriptions (503) and the
   * worker delivers no webhooks. Set it the same on both.
   */
  WEBHOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  /** Gateway: after a secret rotation, how long the previous secret stays valid (its signature sent too), s. */
  WEBHOOK_ROTATION_GRACE_SECONDS: int(0, 30 * 86400).default(86400),
  /** Gateway and worker: delivery attempts kept per subscription in its delivery log. */
  WEBHOOK_LOG_LIMIT: int(1, 10000).default(100),
  /** Worker: attempts per webhook delivery before it is kept as failed (dead letter). */
  WEBHOOK_ATTEMPTS: int(1, 100).default(8),
  /** Worker: base of the exponential backoff between webhook attempts, ms. */
  WEBHOOK_BACKOFF_MS: int(1, 3600000).default(1000),
  /** Worker: webhook deliveries at once per partition queue (each waits on its receiver's answer). */
  WEBHOOK_CONCURRENCY: int(1, 1000).default(32),
  /** Worker: how long one webhook POST may take before it counts as failed, ms. */
  WEBHOOK_TIMEOUT_MS: int(100, 120000).default(5000),
  /**
   * Gateway and worker: webhook targets opened despite the address policy (which refuses loopback, private,
   * link-local, multicast and metadata addresses): comma list of hostnames (`*.example.com` for any name under
   * one), IP addresses and CIDR networks. Set it the same on both.
   */
  WEBHOOK_ALLOW_HOSTS: z
    .string()
    .default("")
    .superRefine((v, ctx) => {
      try {
        new WebhookAddressPolicy(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  // Redis Cluster
  /**
   * Redis Cluster seed nodes ("host:port,host:port"); set, every process uses one ioredis Cluster and
   * REDIS_URL supplies only the credentials and TLS (rediss://). Empty: the single Redis at REDIS_URL.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .regex(/^\s*[^\s,:]+:\d{1,5}\s*(,\s*[^\s,:]+:\d{1,5}\s*)*$/, 'must be "host:port,host:port,..."')
    .transform((v) => v.split(",").map((n) => n.trim()))
    .optional(),
  /**
   * Redis Cluster: the longest a failover takes (cluster-node-timeout plus the election, about 2x the
   * node timeout); the worker's and tools' redirection budget is sized to outlast it.
   */
  REDIS_CLUSTER_FAILOVER_MS: int(500, 600000).default(35000),
  /**
   * Gateway: a callback is answered 200 only after WAIT reports this many replicas have its write
   * (503 ESS-50304 on a shortfall). 0: after the master alone (the default).
   */
  ACK_REPLICAS: int(0, 16).default(0),
  /** Gateway: how long the WAIT of ACK_REPLICAS may block, in ms. */
  ACK_TIMEOUT_MS: int(1, 60000).default(500),
});

export type Config = z.output<typeof configSchema>;

/** Thrown when the environment is invalid; its message names every bad variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses the environment once. Throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") cleaned[k] = v;
  const result = configSchema.safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => {
    const name = String(i.path[0] ?? "environment");
    const got = cleaned[name];
    const message = i.code === "invalid_type" && got === undefined ? "is required" : i.message;
    return `  ${name}: ${message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
}

/**
 * Runs `read` (loadConfig and what derives from it) in a process's main: on a ConfigError it prints the
 * message for `service` and exits 2 before any port or connection is opened.
 */
export function configOrExit<T>(service: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${service}: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

/** The store's limits as the configuration sets them (gateway and worker use the same). */
export function storeLimits(config: Config) {
  return {
    historyLimit: config.HISTORY_LIMIT,
    eventsMaxLen: config.EVENTS_MAXLEN,
    retentionSeconds: config.RETENTION_SECONDS,
    gapTimeoutMs: config.GAP_TIMEOUT_MS,
    idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
  };
}

/** The gateway's HTTP server timeouts in ms; a ConfigError when the head may take longer than the whole request. */
export function httpTimeouts(config: Config) {
  if (config.HTTP_HEADERS_TIMEOUT_SECONDS > config.HTTP_REQUEST_TIMEOUT_SECONDS) {
    throw new ConfigError(
      "invalid configuration:\n  HTTP_HEADERS_TIMEOUT_SECONDS: must not exceed HTTP_REQUEST_TIMEOUT_SECONDS " +
        `(got ${config.HTTP_HEADERS_TIMEOUT_SECONDS} > ${config.HTTP_REQUEST_TIMEOUT_SECONDS})`,
    );
  }
  return {
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_SECONDS * 1000,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
    keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
  };
}

/** Parses WORKER_PARTITIONS ("all", "3", "0-7,12") into a sorted list within [0, partitions). */
export function parsePartitionList(spec: string, partitions: number): number[] {
  if (spec.trim() === "all") return Array.from({ length: partitions }, (_, i) => i);
  const out = new Set<number>();
  for (const part of spec.split(",")) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) throw new ConfigError(`invalid configuration:\n  WORKER_PARTITIONS: bad item "${part}"`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b >= partitions) {
      throw new ConfigError(`invalid configuration:\n  WORKER_PARTITIONS: "${part}" is outside 0-${partitions - 1}`);
    }
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

export {
  createLogger,
  jsonString,
  type LineFields,
  LOG_LEVELS,
  type Logger,
  type LogLevel,
  lineWriter,
  perRequestLogger,
} from "./logger.js";
export { armShutdownDeadline } from "./shutdown.js";
