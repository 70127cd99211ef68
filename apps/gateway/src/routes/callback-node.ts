import type { IncomingMessage, ServerResponse } from "node:http";
import { API_ROUTES, type CallbackBody } from "@ess/contract";
import { ACCESS_RULES, type AccessRule, ruleFor } from "../auth/access-rules.js";
import type { Principal } from "../auth/authenticator.js";
import { requirePrincipal, requireRole } from "../auth/middleware.js";
import { refuseEarly } from "../backpressure.js";
import { bodyAborted, parseJsonText, readDeclaredText, requireDeclaredLength, requireJsonMediaType } from "../body.js";
import type { GatewayDeps } from "../context.js";
import { errorProblem, type Problem } from "../errors.js";
import { backpressureOf } from "../ops/install.js";
import { recordRequest, requestIdOf } from "../ops/observe.js";
import { bodyOf, paramsOf } from "./bind.js";
import { postCallback } from "./callback.js";

/**
 * A route served on node's request and response directly; answers true when it took the request,
 * false to leave it to the Hono app.
 */
export interface NodeRoute {
  (req: IncomingMessage, res: ServerResponse): boolean;
  /** requests it took (for the tests that make sure it is taken) */
  readonly served: number;
}

const ROUTE = API_ROUTES.postExecutionStatus;
const METHOD = ROUTE.method.toUpperCase();
const [PREFIX = "", SUFFIX = ""] = ROUTE.path.split("{requestId}");
/**
 * A path segment Hono and @hono/node-server take as it is (unreserved characters: nothing to decode
 * or normalise), not a dot segment.
 */
const SEGMENT = /^(?!\.\.?$)[A-Za-z0-9._~-]+$/;
/** A Host @hono/node-server takes as it is (its own test: anything else is normalised or refused). */
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;
const CANCEL = "x-ess-cancel-requested";

/**
 * A field as @hono/node-server reads those node keeps only the first of (Authorization,
 * Content-Type): every occurrence, joined with ", ".
 */
function joinedHeader(req: IncomingMessage, name: string): string | undefined {
  const raw = req.rawHeaders;
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string;
    if (n.length === name.length && n.toLowerCase() === name) {
      value = value === undefined ? (raw[i + 1] as string) : `${value}, ${raw[i + 1] as string}`;
    }
  }
  return value;
}

/**
 * The callback route (postExecutionStatus) on node:http: the same rules as the Hono app's
 * middleware and route, called in the same order (request id; authentication and roles;
 * backpressure; params; media type, body limit, JSON, body schema; postCallback; errors through
 * errorProblem; recordRequest), without the web Request, Response and Headers objects and Hono's
 * context around them. It takes only what the app would see unchanged: POST on the route's path
 * with a plain request-id segment, no query, a plain Host and a declared Content-Length; everything
 * else (chunked bodies, other hosts and targets) goes to the app.
 */
export function callbackNodeRoute(deps: GatewayDeps, rules: readonly AccessRule[] = ACCESS_RULES): NodeRoute {
  const ops = deps.ops;
  const auth = ops?.auth;
  const backpressure = backpressureOf(deps);
  let served = 0;

  const serve = async (req: IncomingMessage, res: ServerResponse, path: string, segment: string) => {
    const start = performance.now();
    const requestId = requestIdOf(req.headers["x-request-id"] as string | undefined);
    const contentType = joinedHeader(req, "content-type");
    const rule = ruleFor(rules, METHOD, path);
    let principal: Principal | undefined;
    let callbackStatus: string | undefined;
    let bodyRead = false;
    let status = 200;
    let cancelling = false;
    let problem: Problem | undefined;
    try {
      if (auth && rule.roles !== "public") {
        let found = auth.authenticate(joinedHeader(req, "authorization"), () => req.socket.remoteAddress);
        if (found instanceof Promise) found = await found;
        principal = requirePrincipal(found);
        requireRole(rule, principal);
      }
      if (backpressure) refuseEarly(backpressure, rule.operation, principal?.name, METHOD, path);
      const { requestId: id } = paramsOf(ROUTE, { requestId: segment }) as { requestId: string };
      requireJsonMediaType(contentType);
      requireDeclaredLength(req.headers["content-length"] as string, deps.maxBodyBytes);
      let text: string;
      try {
        text = await readDeclaredText(req);
      } catch (err) {
        throw bodyAborted(err, deps, METHOD, path);
      } finally {
        bodyRead = true;
      }
      const body = bodyOf(ROUTE, parseJsonText(text)) as CallbackBody;
      callbackStatus = body.status;
      cancelling = await postCallback(deps, id, body, req.headers["idempotency-key"] as string | undefined);
    } catch (err) {
      problem = errorProblem(err, deps, { method: METHOD, path, requestId, contentType });
      status = problem.status;
    }
    recordRequest(ops, "gateway", {
      requestId,
      method: METHOD,
      path,
      status,
      operation: rule.operation,
      principal: principal?.name,
      callbackStatus,
      start,
    });
    if (problem) writeProblem(res, requestId, problem);
    else {
      res.writeHead(200, cancelling ? ["x-request-id", requestId, CANCEL, "true"] : ["x-request-id", requestId]);
      res.end();
    }
    if (!bodyRead) discardBody(req, res);
  };

  const route = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url;
    if (req.method !== METHOD || url === undefined || req.headers["content-length"] === undefined) return false;
    if (!url.startsWith(PREFIX) || !url.endsWith(SUFFIX) || url.length <= PREFIX.length + SUFFIX.length) return false;
    const host = req.headers.host;
    if (host === undefined || !PLAIN_HOST.test(host)) return false;
    const segment = url.slice(PREFIX.length, url.length - SUFFIX.length);
    if (!SEGMENT.test(segment)) return false;
    served++;
    serve(req, res, url, segment).catch((err: unknown) => {
      // not reached: serve answers its own errors; as the server's error handler, never internals
      deps.logError(err, { stage: "request listener" });
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end();
    });
    return true;
  };
  Object.defineProperty(route, "served", { get: () => served });
  return route as NodeRoute;
}

/**
 * Writes a problem answer with its headers in the order @hono/node-server writes the app's: a
 * lone Content-Type as node's implicit header (Content-Length last), several in name order
 * (a web Headers object's) with Content-Length after them.
 */
function writeProblem(res: ServerResponse, requestId: string, p: Problem): void {
  const names = Object.keys(p.headers);
  if (names.length === 1) {
    res.statusCode = p.status;
    res.setHeader("x-request-id", requestId);
    res.setHeader(names[0] as string, p.headers[names[0] as string] as string);
    res.end(p.body);
    return;
  }
  const headers = ["x-request-id", requestId];
  for (const k of names.sort()) headers.push(k, p.headers[k] as string);
  headers.push("Content-Length", String(Buffer.byteLength(p.body)));
  res.writeHead(p.status, headers);
  res.end(p.body);
}

/**
 * After an answer sent before the body was read: node discards what the client still sends on a
 * kept-alive connection, and, as @hono/node-server does, the connection is closed if that takes
 * more than half a second.
 */
function discardBody(req: IncomingMessage, res: ServerResponse): void {
  res.once("close", () => {
    if (req.readableEnded || req.destroyed) return;
    const timer = setTimeout(() => {
      if (!req.readableEnded) req.socket.destroySoon();
    }, 500);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    req.resume();
  });
}
