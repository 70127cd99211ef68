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
}

/** Hono environment: dependencies travel in typed context variables, never module singletons. */
export interface AppEnv {
  Variables: { deps: GatewayDeps };
}
