import type { CallbackQueues, RequestStore } from "@ess/store";

/** What the gateway's handlers need; injected by main.ts (or a test). */
export interface GatewayDeps {
  store: RequestStore;
  queues: CallbackQueues;
  /** Largest accepted body in bytes. */
  maxBodyBytes: number;
  /** Upper bound on the enqueue: past it the caller gets 503 instead of a hanging request. */
  enqueueTimeoutMs: number;
  /**
   * How an admitted callback is enqueued: "script" (default) admit and BullMQ's add in one script,
   * one round trip; "queue" the admit script then BullMQ's Queue.add.
   */
  enqueue?: "script" | "queue";
  /** Where unexpected errors go (never to the client). */
  logError: (err: unknown, context: Record<string, unknown>) => void;
}

/** Hono environment: dependencies travel in typed context variables, never module singletons. */
export interface AppEnv {
  Variables: { deps: GatewayDeps };
}
