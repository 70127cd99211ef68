import type { CallbackQueues, DeadLetters, RequestStore } from "@ess/store";

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
  /** Where unexpected errors go (never to the client). */
  logError: (err: unknown, context: Record<string, unknown>) => void;
  /** Scheduler-side settings (issue 4); defaults apply when absent. */
  scheduler?: SchedulerSettings;
}

/** Settings of the scheduler-side routes (cancel, forceCancel, SSE). */
export interface SchedulerSettings {
  /** forceCancel waits this long since CANCELLING began or the last check-in (FORCE_CANCEL_QUIET_MS). */
  forceCancelQuietMs: number;
  /** Poll interval of an idle SSE connection (SSE_POLL_MS). */
  ssePollMs: number;
  /** Aborted when the process stops: open SSE streams end so the server can close. */
  shutdown?: AbortSignal;
}

/** Hono environment: dependencies travel in typed context variables, never module singletons. */
export interface AppEnv {
  Variables: { deps: GatewayDeps };
}
