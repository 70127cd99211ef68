import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { toExceptionDetail } from "@ess/contract";
import type { ErrorCode } from "@ess/domain";
import { getRequestListener, RequestError } from "@hono/node-server";

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

/** What @hono/node-server says about a request it cannot turn into a URL (fixed texts, never the client's). */
const REQUEST_ERRORS = new Set([
  "Invalid host header",
  "Missing host header",
  "Backslash in request path",
  "Invalid absolute URL",
  "Invalid URL",
  "Unsupported scheme",
]);

function problemResponse(code: ErrorCode, detail: string): Response {
  const body = toExceptionDetail(code, detail);
  return new Response(JSON.stringify(body), { status: body.status, headers: { "content-type": "application/json" } });
}

/**
 * Answers what fails before the app sees a request (a Host header or request target no URL can be
 * built from) as a SimpleExceptionDetail rather than @hono/node-server's bare 400; anything else that
 * escapes the app is logged and answered 500 without internals.
 */
export function requestErrorHandler(logError: (err: unknown, context: Record<string, unknown>) => void) {
  return (err: unknown): Response => {
    if (err instanceof RequestError) {
      const what = REQUEST_ERRORS.has(err.message) ? err.message.toLowerCase() : "invalid request target";
      return problemResponse("INVALID_BODY", `the request cannot be processed: ${what}`);
    }
    logError(err, { stage: "request listener" });
    return problemResponse("INTERNAL", "an unexpected error occurred; it has been logged");
  };
}

/**
 * Serves a Hono app's fetch on node:http with the gateway's timeouts and request-error answers
 * (what @hono/node-server's serve() does, plus its errorHandler, which serve() does not take).
 * `route`, when given, is offered each request first and serves those it takes on node's request
 * and response directly (the callback route, routes/callback-node.ts); the app gets the others.
 */
export function serveApp(
  options: {
    fetch: (request: Request) => Response | Promise<Response>;
    port: number;
    hostname: string;
    timeouts: HttpTimeouts;
    logError: (err: unknown, context: Record<string, unknown>) => void;
    route?: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  },
  onListening?: (info: AddressInfo) => void,
): Server {
  const app = getRequestListener(options.fetch, {
    hostname: options.hostname,
    errorHandler: requestErrorHandler(options.logError),
  });
  const route = options.route;
  const listener = route
    ? (req: IncomingMessage, res: ServerResponse) => {
        if (!route(req, res)) void app(req, res);
      }
    : app;
  const server = createServer(serverOptions(options.timeouts), listener);
  server.listen(options.port, options.hostname, () => onListening?.(server.address() as AddressInfo));
  return server;
}
