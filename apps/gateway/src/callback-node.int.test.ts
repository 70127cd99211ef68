import { connect } from "node:net";
import type { Logger } from "@ess/config";
import { hashPassword } from "@ess/secrets";
import type { RequestStore } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import type { BacklogMonitor } from "./backlog.js";
import type { GatewayDeps } from "./context.js";
import { GatewayMetrics } from "./metrics.js";
import { RateLimiter } from "./rate-limit.js";
import { callbackNodeRoute, type NodeRoute } from "./routes/callback-node.js";
import type { serveApp } from "./server.js";
import { serveOnLoopback, useGatewayTestContext } from "./test-context.js";

// The callback route on node:http (routes/callback-node.ts) against the Hono app's route: the
// same answers, log lines and metrics for a table of good and bad calls, over real sockets.

const ctx = await useGatewayTestContext({ maxBodyBytes: 2048 });
const PATH = (id: string) => `/ess/rest/scheduler/v1/requests/${id}/executionStatus`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** One HTTP exchange as it went over the wire. */
interface Exchange {
  status: string;
  /** header lines as sent (name as written, value) */
  headers: [string, string][];
  /** how the body was framed */
  framing: "length" | "chunked" | "none";
  body: string;
  closed: boolean;
}

/** Writes raw requests on one connection, one after the other, and parses each answer. */
function exchange(port: number, requests: string[]): Promise<Exchange[]> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const out: Exchange[] = [];
    let closed = false;
    let finished = false;
    const next = () => {
      const request = requests[out.length];
      if (request === undefined) {
        finished = true;
        socket.destroy();
        resolve(out);
      } else socket.write(request);
    };
    // parses one complete answer from buf, or returns false
    const parse = (): boolean => {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return false;
      const [status = "", ...lines] = buf.subarray(0, end).toString("latin1").split("\r\n");
      const headers = lines.map((l) => {
        const i = l.indexOf(":");
        return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
      });
      const get = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
      let rest = buf.subarray(end + 4);
      let body: Buffer;
      let framing: Exchange["framing"];
      if (get("content-length") !== undefined) {
        const n = Number(get("content-length"));
        if (rest.length < n) return false;
        body = rest.subarray(0, n);
        rest = rest.subarray(n);
        framing = "length";
      } else if (get("transfer-encoding") === "chunked") {
        const parts: Buffer[] = [];
        for (;;) {
          const eol = rest.indexOf("\r\n");
          if (eol < 0) return false;
          const size = Number.parseInt(rest.subarray(0, eol).toString(), 16);
          if (rest.length < eol + 2 + size + 2) return false;
          parts.push(rest.subarray(eol + 2, eol + 2 + size));
          rest = rest.subarray(eol + 2 + size + 2);
          if (size === 0) break;
        }
        body = Buffer.concat(parts);
        framing = "chunked";
      } else {
        if (!closed) return false;
        body = rest;
        rest = Buffer.alloc(0);
        framing = "none";
      }
      buf = rest;
      out.push({ status, headers, framing, body: body.toString("utf8"), closed: false });
      return true;
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (parse()) next();
    });
    // a write after the server closed (413) fails; what came back is the answer
    socket.on("error", () => {});
    socket.on("close", () => {
      if (finished) return;
      closed = true;
      while (buf.length > 0 && parse()) {}
      const last = out.at(-1);
      if (last) last.closed = true;
      resolve(out);
    });
    socket.on("connect", next);
  });
}

/** A raw HTTP/1.1 request; Content-Length is the body's unless the headers give one. */
function raw(
  method: string,
  path: string,
  headers: [string, string][],
  body?: string,
  host = "127.0.0.1:3000",
): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  if (body !== undefined && !headers.some(([k]) => k.toLowerCase() === "content-length")) {
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
}

const JSON_TYPE: [string, string] = ["Content-Type", "application/json"];

/** What one server of a pair recorded. */
interface Recorded {
  access: Record<string, unknown>[];
  debug: Record<string, unknown>[];
  errors: unknown[];
  warnings: string[];
  metrics: GatewayMetrics;
}

interface Server {
  port: number;
  route: NodeRoute | undefined;
  recorded: Recorded;
  close(): Promise<void>;
}

type Variant = (deps: GatewayDeps) => GatewayDeps;

const hash = await hashPassword("pw-hashed");
const auth = () =>
  Authenticator.fromConfig({
    AUTH_USERS: `carol:job:pw-1,dave:job:${hash}`,
    AUTH_TOKENS: "fleet:job:tok-job,sched:scheduler:tok-sched",
    ALLOW_ANONYMOUS: false,
  });

/** A gateway of its own (deps, metrics, logs, limiter), served with the node:http route or without it. */
async function start(withRoute: boolean, variant: Variant = (d) => d): Promise<Server> {
  const recorded: Recorded = { access: [], debug: [], errors: [], warnings: [], metrics: new GatewayMetrics() };
  const accessLog = { info: (obj: Record<string, unknown>) => recorded.access.push(obj) } as unknown as Logger;
  const deps = variant({
    ...ctx.deps,
    ops: { auth: await auth(), metrics: recorded.metrics, accessLog, retryAfterSeconds: 7 },
    logError: (err) => recorded.errors.push(err),
    logDebug: (context) => recorded.debug.push(context),
    logWarn: (message) => recorded.warnings.push(message),
  });
  const route = withRoute ? callbackNodeRoute(deps) : undefined;
  const { server, port } = await serveOnLoopback(createApp(deps), (err) => recorded.errors.push(err), route);
  return { port, route, recorded, close: () => stop(server) };
}

async function stop(server: ReturnType<typeof serveApp>): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** A registered request of its own for each side of a pair (the table's calls change state). */
async function registered(): Promise<{ id: string; handle: string }> {
  const id = newRequestId();
  const res = await ctx.app.request(`/gateway/v1/requests/${id}/executions`, { method: "POST" });
  return { id, handle: ((await res.json()) as { requestHandle: string }).requestHandle };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** An exchange with what may differ between two runs blanked: Date, a generated X-Request-Id, the request's id and handle. */
function normalised(e: Exchange, own: { id: string; handle: string }) {
  const blank = (s: string) => s.replaceAll(own.id, "<id>").replaceAll(own.handle, "<handle>");
  const headers = e.headers
    .filter(([k]) => k.toLowerCase() !== "date")
    .map(([k, v]) => `${k}: ${k.toLowerCase() === "x-request-id" && UUID.test(v) ? "<uuid>" : blank(v)}`);
  return { status: e.status, headers, framing: e.framing, body: blank(e.body), closed: e.closed };
}

interface Case {
  name: string;
  /** the requests, sent in order on one connection */
  calls: (own: { id: string; handle: string }) => string[];
  /** prepares the side's request (e.g. a state) */
  setup?: (own: { id: string; handle: string }) => Promise<void>;
  variant?: Variant;
  /** the status codes of the answers */
  statuses: number[];
}

const ok = (own: { handle: string }, status = "UPDATE") => JSON.stringify({ requestHandle: own.handle, status });
const job: [string, string] = ["Authorization", "Bearer tok-job"];

const CASES: Case[] = [
  { name: "200", statuses: [200], calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))] },
  {
    name: "200, vendor type with parameters, a caller's X-Request-Id, a status message",
    statuses: [200],
    calls: (o) => [
      raw(
        "POST",
        PATH(o.id),
        [job, ["content-type", "application/vnd.oracle.resource+json; charset=utf-8"], ["X-Request-Id", "caller-1"]],
        JSON.stringify({ requestHandle: o.handle, status: "UPDATE", statusMessage: "héllo 50%" }),
      ),
    ],
  },
  {
    name: "200 with X-ESS-Cancel-Requested while CANCELLING",
    statuses: [200],
    setup: async (o) => {
      await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(o.id), o.id), "state", "CANCELLING");
    },
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))],
  },
  {
    name: "a sequence on one connection: UPDATE, SUCCESS, a repeat, ERROR (not applied yet, so accepted)",
    statuses: [200, 200, 200, 200],
    calls: (o) => [
      raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o, "SUCCESS")),
      raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o, "SUCCESS")),
      raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o, "ERROR")),
    ],
  },
  {
    name: "Idempotency-Key: first, repeat, other body, invalid key",
    statuses: [200, 200, 422, 400],
    calls: (o) => [
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["Idempotency-Key", "k-1"]], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["Idempotency-Key", "k-1"]], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["Idempotency-Key", "k-1"]], ok(o, "SUCCESS")),
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["Idempotency-Key", "has space"]], ok(o)),
    ],
  },
  {
    name: "404 unknown request",
    statuses: [404],
    calls: (o) => [raw("POST", PATH("999999999999"), [job, JSON_TYPE], ok(o))],
  },
  {
    name: "403 wrong handle",
    statuses: [403],
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok({ handle: "not-the-handle" }))],
  },
  ...["0", "-5", "12ab", "9223372036854775808", "007x", "~", "a.b"].map((bad) => ({
    name: `400 request id ${bad}`,
    statuses: [400],
    calls: (o: { handle: string }) => [raw("POST", PATH(bad), [job, JSON_TYPE], ok(o))],
  })),
  ...[
    ["malformed JSON", '{"status": '],
    ["an empty body", ""],
    ["not an object", "[1,2]"],
    ["a missing handle", '{"status":"SUCCESS"}'],
    ["an unknown status", '{"requestHandle":"h","status":"success"}'],
    ["a wrong type", '{"requestHandle":"h","status":"ERROR","statusMessage":5}'],
    ["an unknown property", '{"requestHandle":"h","status":"ERROR","message":"x"}'],
    ["invalid UTF-8 and a BOM", '\ufeff{"requestHandle":"h\udcff","status":"ERROR"}'],
  ].map(([what, body]) => ({
    name: `400 for ${what}`,
    statuses: [400],
    calls: (o: { id: string }) => [raw("POST", PATH(o.id), [job, JSON_TYPE], body)],
  })),
  {
    name: "413 declared over the limit, then the connection closes",
    statuses: [413],
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], "x".repeat(3000)), raw("POST", PATH(o.id), [job], "")],
  },
  {
    name: "415 for other types, a missing type, and repeated Content-Type fields",
    statuses: [415, 415, 415, 400],
    calls: (o) => [
      raw("POST", PATH(o.id), [job, ["Content-Type", "text/plain"]], ok(o)),
      raw("POST", PATH(o.id), [job], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE, JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [job, ["Content-Type", "application/vnd.oracle.resource+json"]], "{"),
    ],
  },
  {
    name: "401 without, with wrong and with repeated credentials (the body left unread, the connection reused)",
    statuses: [401, 401, 401, 401, 200],
    calls: (o) => [
      raw("POST", PATH(o.id), [JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [["Authorization", "Bearer nope"], JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [job, job, JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [["Authorization", basic("carol", "wrong")], JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o)),
    ],
  },
  {
    name: "403 for a role that does not post callbacks",
    statuses: [403],
    calls: (o) => [raw("POST", PATH(o.id), [["Authorization", "Bearer tok-sched"], JSON_TYPE], ok(o))],
  },
  {
    name: "Basic credentials, plain and hashed (a password check that completes later)",
    statuses: [200, 200, 401],
    calls: (o) => [
      raw("POST", PATH(o.id), [["Authorization", basic("dave", "pw-hashed")], JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [["Authorization", basic("carol", "pw-1")], JSON_TYPE], ok(o)),
      raw("POST", PATH(o.id), [["Authorization", basic("dave", "nope")], JSON_TYPE], ok(o)),
    ],
  },
  {
    name: "X-Request-Id: a caller's, one too long, one with a space",
    statuses: [200, 200, 200],
    calls: (o) => [
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["X-Request-Id", "abc-123"]], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["X-Request-Id", "a".repeat(129)]], ok(o)),
      raw("POST", PATH(o.id), [job, JSON_TYPE, ["X-Request-Id", "a b"]], ok(o)),
    ],
  },
  {
    name: "429 past the rate limit",
    statuses: [200, 429],
    variant: (d) => ({
      ...d,
      ops: { ...(d.ops as NonNullable<GatewayDeps["ops"]>), rateLimit: new RateLimiter(0.001, 1) },
    }),
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o)), raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))],
  },
  {
    name: "503 for a partition past its backlog",
    statuses: [503],
    variant: (d) => ({
      ...d,
      ops: {
        ...(d.ops as NonNullable<GatewayDeps["ops"]>),
        backlog: { over: () => true } as unknown as BacklogMonitor,
      },
    }),
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))],
  },
  {
    name: "503 while Redis is not connected",
    statuses: [503],
    variant: (d) => ({ ...d, store: storeWith(d.store, { redis: { status: "reconnecting" } }) }),
    calls: (o) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))],
  },
  ...(
    [
      ["500 without internals for an unexpected error", new Error("boom: internal detail"), 500],
      ["503 for a Redis outage", new Error("Connection is closed."), 503],
      ["503 for a full Redis", new Error("OOM command not allowed when used memory > 'maxmemory'."), 503],
    ] as const
  ).map(([name, err, status]) => ({
    name,
    statuses: [status],
    variant: (d: GatewayDeps) => ({
      ...d,
      admitBatchMax: 1,
      store: storeWith(d.store, { admitAndEnqueue: () => Promise.reject(err) }),
    }),
    calls: (o: { id: string; handle: string }) => [raw("POST", PATH(o.id), [job, JSON_TYPE], ok(o))],
  })),
];

/** The store with some members replaced. */
function storeWith(store: RequestStore, members: Record<string, unknown>): RequestStore {
  return Object.create(store, Object.fromEntries(Object.entries(members).map(([k, value]) => [k, { value }])));
}

describe("the callback route on node:http answers as the Hono app's", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const hono = await start(false, c.variant);
    const node = await start(true, c.variant);
    try {
      const runs = [];
      for (const side of [hono, node]) {
        const own = await registered();
        await c.setup?.(own);
        const taken = side.route?.served ?? 0;
        const calls = c.calls(own);
        const answers = await exchange(side.port, calls);
        if (side.route) expect(side.route.served - taken).toBe(answers.length);
        runs.push({ answers: answers.map((a) => normalised(a, own)), own, count: calls.length });
      }
      const [h, n] = runs as [(typeof runs)[0], (typeof runs)[0]];
      expect(h.answers.map((a) => Number(a.status.split(" ")[1]))).toEqual(c.statuses);
      expect(n.answers).toEqual(h.answers);
      // the log lines and the metrics of the two sides
      const lines = (s: Server, own: { id: string; handle: string }) =>
        s.recorded.access.map((l) => ({
          ...l,
          durationMs: typeof l.durationMs,
          path: String(l.path).replaceAll(own.id, "<id>"),
          requestId: UUID.test(String(l.requestId)) ? "<uuid>" : l.requestId,
        }));
      expect(lines(node, n.own)).toEqual(lines(hono, h.own));
      expect(node.recorded.debug.length).toBe(hono.recorded.debug.length);
      expect(node.recorded.errors.length).toBe(hono.recorded.errors.length);
      expect(node.recorded.warnings).toEqual(hono.recorded.warnings);
      for (const name of ["ess_http_requests_total", "ess_callbacks_total", "ess_backpressure_rejections_total"]) {
        const text = async (s: Server) => s.recorded.metrics.registry.getSingleMetricAsString(name);
        expect(await text(node)).toBe(await text(hono));
      }
      const count = (s: Server) =>
        s.recorded.metrics.registry.getSingleMetric("ess_http_request_duration_seconds")?.get();
      const observations = async (s: Server) =>
        (await count(s))?.values
          .filter((v) => (v as { metricName?: string }).metricName?.endsWith("_count"))
          .map((v) => [v.labels, v.value]);
      expect(await observations(node)).toEqual(await observations(hono));
    } finally {
      await hono.close();
      await node.close();
    }
  });
});

describe("the callback route on node:http answers random calls as the Hono app does", () => {
  let hono: Server;
  let node: Server;
  const own = { id: "", handle: "" };
  beforeAll(async () => {
    hono = await start(false);
    node = await start(true);
    Object.assign(own, await registered());
  });
  afterAll(async () => {
    await hono?.close();
    await node?.close();
  });

  const latin1 = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)) });
  const segment = fc.oneof(
    fc.constant(() => own.id),
    fc.bigInt({ min: 0n, max: 2n ** 64n }).map((n) => () => String(n)),
    fc
      .string({ unit: fc.constantFrom(..."0123456789azAZ._~-"), minLength: 1, maxLength: 30 })
      .filter((x) => x !== "." && x !== "..")
      .map((x) => () => x),
  );
  const header = (name: string, value: fc.Arbitrary<string>) =>
    fc.option(
      value.map((v) => [name, v] as [string, string]),
      { nil: undefined },
    );
  const headersArb = fc.tuple(
    header(
      "Authorization",
      fc.oneof(
        fc.constantFrom("Bearer tok-job", "Bearer tok-sched", "Bearer nope", basic("carol", "pw-1"), "Basic", ""),
        latin1,
      ),
    ),
    header(
      "Content-Type",
      fc.oneof(
        fc.constantFrom(
          "application/json",
          "application/vnd.oracle.resource+json; charset=utf-8",
          "APPLICATION/JSON",
          "text/plain",
          "",
        ),
        latin1,
      ),
    ),
    header("Idempotency-Key", latin1),
    header("X-Request-Id", latin1),
  );
  const bodyArb = fc.oneof(
    fc.constantFrom("UPDATE", "SUCCESS", "ERROR", "WARNING", "bogus").map((status) => () => ok(own, status)),
    fc.json().map((j) => () => j),
    fc.string({ maxLength: 2500 }).map((x) => () => x),
    fc.constantFrom('{"status": ', "[", "", "1e999999", "[".repeat(3000)).map((x) => () => x),
  );

  it("status, headers and body; then the same access-log lines", async () => {
    const takenBefore = node.route?.served ?? 0;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(segment, headersArb, bodyArb, async (id, headers, body) => {
        const request = raw(
          "POST",
          PATH(id()),
          headers.filter((h) => h !== undefined),
          body(),
        );
        const [h] = await exchange(hono.port, [request]);
        const [n] = await exchange(node.port, [request]);
        runs++;
        expect(h).toBeDefined();
        expect(n && normalised(n, own)).toEqual(h && normalised(h, own));
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 200) },
    );
    // every call the server got (node's parser refuses some headers before any listener) took the route
    expect((node.route?.served ?? 0) - takenBefore).toBe(hono.recorded.access.length);
    expect(hono.recorded.access.length).toBeGreaterThan(runs / 2);
    const lines = (x: Server) =>
      x.recorded.access.map((l) => ({
        ...l,
        durationMs: typeof l.durationMs,
        requestId: UUID.test(String(l.requestId)) ? "<uuid>" : l.requestId,
      }));
    expect(lines(node)).toEqual(lines(hono));
    expect(node.recorded.errors).toEqual([]);
    expect(hono.recorded.errors).toEqual([]);
  });
});

describe("the callback route on node:http", () => {
  let server: Awaited<ReturnType<typeof serveOnLoopback>>;
  beforeAll(async () => {
    server = await serveOnLoopback(ctx.app, (err) => ctx.errors.push(err), ctx.callbackRoute);
  });
  afterAll(() => stop(server.server));

  it("is taken for callbacks served as main.ts serves them", async () => {
    const { id, handle } = await registered();
    const before = ctx.callbackRoute.served;
    const res = await fetch(`http://127.0.0.1:${server.port}${PATH(id)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: handle, status: "UPDATE" }),
    });
    expect(res.status).toBe(200);
    expect(ctx.callbackRoute.served).toBe(before + 1);
  });

  it.each([
    [
      "a chunked body",
      (id: string) => `${raw("POST", PATH(id), [JSON_TYPE, ["Transfer-Encoding", "chunked"]])}0\r\n\r\n`,
    ],
    ["a query", (id: string) => raw("POST", `${PATH(id)}?x=1`, [JSON_TYPE], "{}")],
    ["an encoded id", (id: string) => raw("POST", PATH(`%3${id}`), [JSON_TYPE], "{}")],
    ["a dot segment", () => raw("POST", PATH(".."), [JSON_TYPE], "{}")],
    ["another method", (id: string) => raw("PUT", PATH(id), [JSON_TYPE], "{}")],
    ["another path", () => raw("POST", "/ess/rest/scheduler/v1/requests/1/executionStatus/", [JSON_TYPE], "{}")],
    ["an upper-case Host", (id: string) => raw("POST", PATH(id), [JSON_TYPE], "{}", "LOCALHOST:3000")],
    ["a Host with a port Hono normalises", (id: string) => raw("POST", PATH(id), [JSON_TYPE], "{}", "localhost:80")],
  ])("leaves %s to the app", async (_what, request) => {
    const before = ctx.callbackRoute.served;
    const [answer] = await exchange(server.port, [request(newRequestId())]);
    expect(answer?.status).toMatch(/^HTTP\/1\.1 [1-5]\d\d /);
    expect(ctx.callbackRoute.served).toBe(before);
  });
});
