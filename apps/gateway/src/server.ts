import type { ServerOptions } from "node:http";

/** The HTTP server timeouts the gateway chooses (HTTP_*_TIMEOUT_SECONDS), in ms. */
export interface HttpTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/**
 * node:http options for a listener. Node's defaults suit a general web server, not a callback API:
 * a request head may take 60 s, a whole request 300 s. Node enforces the head and request limits
 * from a periodic sweep (30 s by default), so the sweep runs every second to cut a slow client
 * close to its limit rather than up to 30 s later.
 */
export function serverOptions(t: HttpTimeouts): ServerOptions {
  return {
    headersTimeout: t.headersTimeoutMs,
    requestTimeout: t.requestTimeoutMs,
    keepAliveTimeout: t.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, t.headersTimeoutMs),
  };
}
