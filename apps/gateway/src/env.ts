import type { CallbackQueues, RequestStore } from "@ess/store";
import type { Principal } from "./auth.js";
import type { OperationsDeps } from "./ops.js";

/** What the gateway's handlers need; injected by main.ts (or a test). */
export interface GatewayDeps {
  store: RequestStore;
  queues: CallbackQueues;
  /** Largest accepted body in bytes. */
  maxBodyBytes: number;
  /** Upper bound on the enqueue: past it the caller gets 503 instead of a hanging request. */
  enqueueTimeoutMs: number;
  /** Where unexpected errors go (never to the client). */
  logError: (err: unknown, context: Record<string, unknown>) => void;
  /** Auth, metrics, backpressure, access logs, readiness (issue 5); absent: anonymous, no metrics. */
  ops?: OperationsDeps;
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
