import type { AddressInfo } from "node:net";
import { createLogger, loadConfig } from "@ess/config";
import { waitReady } from "@ess/store";
import { type TestContext, type TestContextOptions, testSecretBox, useTestContext } from "@ess/testing/context";
import { afterAll, beforeAll } from "vitest";
import { Authenticator } from "./auth/authenticator.js";
import type { GatewayDeps } from "./context.js";
import { serveApp } from "./server.js";
import { type WiredGateway, wireGateway } from "./wiring.js";

/** A test file's in-process gateway: the Redis side (@ess/testing) and the apps wired as main.ts wires them. */
export interface GatewayTestContext extends TestContext {
  app: WiredGateway["app"];
  adminApp: WiredGateway["adminApp"];
  /** the callback route on node:http, as main.ts serves it next to `app` (serveOnLoopback's `route`) */
  callbackRoute: WiredGateway["callbackRoute"];
  /** what the two apps were built from: spread it to build a variant (`createApp({ ...ctx.deps, ... })`) */
  deps: GatewayDeps;
  /** errors the gateway logged as unexpected (its logError) */
  errors: unknown[];
}

/**
 * The gateway of the tests, built by wireGateway from a configuration (loadConfig, as main.ts does),
 * on a connection with the gateway's profile: the same operations layer (anonymous auth, metrics,
 * backpressure, readiness) as production. `env` adds configuration variables. Awaited at the top of
 * a test file (building the authenticator is asynchronous, as in main.ts).
 */
export async function useGatewayTestContext(
  opts: TestContextOptions & { maxBodyBytes?: number; env?: Record<string, string> } = {},
): Promise<GatewayTestContext> {
  const ctx = useTestContext({ ...opts, role: "gateway" });
  const config = loadConfig({
    REDIS_URL: ctx.url,
    KEY_PREFIX: ctx.prefix,
    PARTITIONS: String(ctx.keys.partitions),
    ALLOW_ANONYMOUS: "true",
    LOG_LEVEL: "silent",
    MAX_BODY_BYTES: String(opts.maxBodyBytes ?? 16384),
    DLQ_REPLAY_RATE: "100",
    ...opts.env,
  });
  const errors: unknown[] = [];
  // as main.ts: connected (on a Cluster, every node) before the wiring builds the BullMQ queues. A
  // Queue checks the Redis version once, at construction, and keeps that answer: a node connection
  // still opening refuses the check under the gateway profile, and the Queue would fail every call.
  await waitReady(ctx.redis);
  const wired = wireGateway(config, {
    redis: ctx.redis,
    store: ctx.store,
    queues: ctx.queues,
    deadLetters: ctx.deadLetters,
    auth: await Authenticator.fromConfig(config),
    log: createLogger(config, "gateway"),
    // the box of TEST_WEBHOOK_KEK, derived once per process (scrypt takes a moment)
    secretBox: testSecretBox,
    logError: (err: unknown) => errors.push(err),
  });
  afterAll(() => {
    wired.backlog?.stop();
    wired.sseShutdown.abort();
  });
  return {
    ...ctx,
    app: wired.app,
    adminApp: wired.adminApp,
    callbackRoute: wired.callbackRoute,
    deps: wired.deps,
    errors,
  };
}

/**
 * Serves an app on a free loopback port, as main.ts serves it (serveApp), for tests over a real
 * socket; with `route`, that node:http route is offered each request first, as main.ts does with the
 * callback route.
 */
export async function serveOnLoopback(
  app: { fetch: (request: Request) => Response | Promise<Response> },
  logError: (err: unknown) => void,
  route?: WiredGateway["callbackRoute"],
): Promise<{ server: ReturnType<typeof serveApp>; port: number }> {
  const server = serveApp({
    fetch: app.fetch,
    route,
    port: 0,
    hostname: "127.0.0.1",
    timeouts: { headersTimeoutMs: 10000, requestTimeoutMs: 30000, keepAliveTimeoutMs: 5000 },
    logError,
  });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  return { server, port: (server.address() as AddressInfo).port };
}

/** One request to the gateway's callback listener, as app.request takes it (a path on the listener). */
export type Send = (path: string, init?: RequestInit) => Promise<Response>;

/**
 * The two ways a test reaches the callback listener: in-process (app.request, the Hono app alone)
 * and over real HTTP through serveApp with the callback route on node:http, as main.ts serves it.
 * A suite run over both (describe.each) checks the two implementations of the callback route
 * against the same expectations. The server starts before the file's tests and stops after them.
 */
export function useTransports(ctx: GatewayTestContext): [name: string, send: Send][] {
  let base = "";
  let server: ReturnType<typeof serveApp> | undefined;
  beforeAll(async () => {
    const served = await serveOnLoopback(ctx.app, (err) => ctx.errors.push(err), ctx.callbackRoute);
    server = served.server;
    base = `http://127.0.0.1:${served.port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });
  return [
    ["in-process", async (path, init) => ctx.app.request(path, init)],
    ["node:http", (path, init) => fetch(`${base}${path}`, init)],
  ];
}
