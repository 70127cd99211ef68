import type { Logger } from "@ess/config";
import type { WebhookAddressPolicy } from "@ess/contract";
import type { AuditLog, CallbackQueues, DeadLetters, ReplicaAck, RequestStore, WebhookStore } from "@ess/store";
import type { AcceptObserver } from "./accept-observer.js";
import type { Authenticator, Principal } from "./auth/authenticator.js";
import type { BacklogMonitor } from "./backlog.js";
import type { GatewayMetrics, QueueCatalog } from "./metrics.js";
import type { Readiness } from "./ops/readiness.js";
import type { RateLimiter } from "./rate-limit.js";

/** What the gateway's handlers need; injected by main.ts (or a test). */
export interface GatewayDeps {
  store: RequestStore;
  queues: CallbackQueues;
  deadLetters: DeadLetters;
  /** default rate of bulk dead-letter replays (entries per second) */
  replayRate: number;
  /** Largest accepted body in bytes. */
  maxBodyBytes: number;
  /** Upper bound on the enqueue: past it the caller gets 503 instead of a hanging request. */
  enqueueTimeoutMs: number;
  /**
   * How an admitted callback is enqueued: "script" (default) admit and BullMQ's add in one script,
   * one round trip; "queue" the admit script then BullMQ's Queue.add.
   */
  enqueue?: "script" | "queue";
  /**
   * ENQUEUE_MODE "script": callbacks of one partition reaching the admit in one event-loop turn share one
   * script call and one batch job, up to this many (ADMIT_BATCH_MAX); absent or 1: one call each.
   */
  admitBatchMax?: number | undefined;
  /**
   * Batching under load (ADMIT_BATCH_WINDOW_MS): after a batch of more than one callback, the group's next
   * batch waits up to this many ms for others; after a batch of one, none waits. Absent or 0: none waits.
   */
  admitBatchWindowMs?: number | undefined;
  /**
   * Connections of the callback listener that could send a request now (IdleConnections); a batch
   * waits for its window only while some can. Absent: assumed some can.
   */
  idleConnections?: (() => number) | undefined;
  /** ACK_REPLICAS: a callback is answered 200 only once this many replicas have it (absent: the master alone). */
  replicaAck?: ReplicaAck | undefined;
  /** Where unexpected errors go (never to the client). */
  logError: (err: unknown, context: Record<string, unknown>) => void;
  /** Routine events worth a debug line (a client that aborted its body); absent: not logged. */
  logDebug?: (context: Record<string, unknown>, message: string) => void;
  /**
   * Origin (and optional path prefix) that `Location` and `links[].href` are built on, e.g.
   * `https://ess.example.com` (PUBLIC_BASE_URL). Absent: the URL the request came in on (its Host header).
   */
  publicBaseUrl?: string | undefined;
  /** Where expected trouble goes (a full Redis): one line, no stack; absent: not logged. */
  logWarn?: (message: string, context: Record<string, unknown>) => void;
  /** Hooks around the admit and the enqueue of a callback (metrics, tracing); absent: unobserved. */
  observe?: AcceptObserver | undefined;
  /** Auth, metrics, backpressure, access logs, readiness; absent: anonymous, no metrics. */
  ops?: OperationsDeps;
  /** Webhook subscriptions, their sealed secrets and delivery logs; absent: subscribe answers 503. */
  webhooks?: WebhookStore;
  /** Scheduler-side settings; defaults apply when absent. */
  scheduler?: SchedulerSettings;
  /** The operator audit log (AUDIT_MAX_ENTRIES); absent: one with the default cap on `store`'s Redis. */
  audit?: AuditLog;
}

/** Settings of the scheduler-side routes (cancel, forceCancel, SSE). */
export interface SchedulerSettings {
  /** forceCancel waits this long since CANCELLING began or the last check-in (FORCE_CANCEL_QUIET_MS). */
  forceCancelQuietMs: number;
  /** Poll interval of an idle SSE connection (SSE_POLL_MS). */
  ssePollMs: number;
  /** Aborted when the process stops: open SSE streams end so the server can close. */
  shutdown?: AbortSignal;
  /** How long a rotated-out webhook secret stays valid (WEBHOOK_ROTATION_GRACE_SECONDS); default one day. */
  webhookRotationGraceMs?: number;
  /** Which callbackUrls a subscription may name (WEBHOOK_ALLOW_HOSTS); absent: the default policy. */
  webhookPolicy?: WebhookAddressPolicy;
}

/** Hono environment: dependencies travel in typed context variables, never module singletons. */
export interface AppEnv {
  Variables: {
    deps: GatewayDeps;
    /** X-Request-Id of this request (taken from the caller or generated). */
    requestId: string;
    /** Operation name from the access table (bounded: also the metrics label). */
    operation: string | undefined;
    /** Who is calling, once authenticated. */
    principal: Principal | undefined;
    /** The callback's ESS status once its body parsed (for the callbacks metric). */
    callbackStatus: string | undefined;
  };
}

/** What the operations layer needs; built by main.ts, or by a test. */
export interface OperationsDeps {
  auth: Authenticator;
  metrics?: GatewayMetrics | undefined;
  catalog?: QueueCatalog | undefined;
  backlog?: BacklogMonitor | undefined;
  rateLimit?: RateLimiter | undefined;
  /** Access logs (one line per request) go here; absent: none. */
  accessLog?: Logger | undefined;
  readiness?: Readiness | undefined;
  retryAfterSeconds: number;
}
