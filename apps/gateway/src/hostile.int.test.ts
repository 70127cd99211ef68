import {
  GATEWAY_ROUTES,
  QUERY_ORDER_FIELDS,
  QUERY_TEXT_FIELDS,
  QUERY_TIME_FIELDS,
  type RouteDeclaration,
  simpleExceptionDetailSchema,
} from "@ess/contract";
import { CALLBACK_STATUSES, STATE_NAMES } from "@ess/domain";
import { newRequestId } from "@ess/testing/context";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createAdminApp, createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import { ADMIN_ROUTES } from "./routes/admin-routes.js";
import { useGatewayTestContext } from "./test-context.js";

// Property-based probing of every route with hostile input, in-process against a real Redis:
// never a 5xx while Redis is up, every error a SimpleExceptionDetail, nothing internal in a body.

const ctx = await useGatewayTestContext({ maxBodyBytes: 2048 });
const ESS = "/ess/rest/scheduler/v1/requests";

let anonymous: ReturnType<typeof createApp>;
let secured: ReturnType<typeof createApp>;
let admin: ReturnType<typeof createAdminApp>;
/** A registered request and its handle, so random calls also reach the admit script and the store. */
const live = { id: "", handle: "", subscriptionId: "0123456789abcdef" };

beforeAll(async () => {
  const open = await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: true });
  const strict = await Authenticator.fromConfig({
    AUTH_USERS: "fleet:job:fleet-password,sched:scheduler+admin:sched-password",
    AUTH_TOKENS: "ops:admin:an-admin-token-of-some-length",
    ALLOW_ANONYMOUS: false,
  });
  anonymous = createApp({ ...ctx.deps, ops: { auth: open, retryAfterSeconds: 1 } });
  secured = createApp({ ...ctx.deps, ops: { auth: strict, retryAfterSeconds: 1 } });
  admin = createAdminApp({ ...ctx.deps, ops: { auth: open, retryAfterSeconds: 1 } });
  live.id = newRequestId();
  const res = await anonymous.request(`/gateway/v1/requests/${live.id}/executions`, { method: "POST" });
  expect(res.status).toBe(201);
  live.handle = ((await res.json()) as { requestHandle: string }).requestHandle;
  // a subscription of it, so the subscription routes also reach a stored one
  const sub = await anonymous.request(`${ESS}/${live.id}/subscribe`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ callbackUrl: "https://receiver.example.com/hook" }),
  });
  expect(sub.status).toBeLessThan(300);
  live.subscriptionId = ((await sub.json()) as { subscriptionId: string }).subscriptionId;
});

// --- generators ------------------------------------------------------------------------------

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
const latin1 = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)) });
const SPECIAL_NAMES = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "isPrototypeOf",
  "__defineGetter__",
  "then",
];

const requestIdArb = fc.oneof(
  fc.constant(() => live.id),
  fc.bigInt({ min: -10n, max: 2n ** 70n }).map((n) => () => String(n)),
  fc
    .constantFrom("0", "-1", "+1", "007", "9223372036854775807", "9223372036854775808", "1e3", "0x10", " 1", "%00")
    .map((s) => () => s),
  fc.constantFrom(...SPECIAL_NAMES).map((s) => () => s),
  printable.map((s) => () => encodeURIComponent(s)),
);

const segmentArb = fc.oneof(
  fc.constantFrom(...SPECIAL_NAMES, "swagger-ui.css", "init.js", "..", "%2e%2e", "%2F", "%00", "%ff", "%"),
  printable.map(encodeURIComponent),
);

const pathArb: fc.Arbitrary<() => string> = fc.oneof(
  requestIdArb.map((id) => () => `${ESS}/${id()}`),
  fc
    .tuple(requestIdArb, fc.constantFrom("executionStatus", "cancel", "forceCancel", "checkInCancelling", "subscribe"))
    .map(
      ([id, op]) =>
        () =>
          `${ESS}/${id()}/${op}`,
    ),
  requestIdArb.map((id) => () => `/gateway/v1/requests/${id()}/executions`),
  fc
    .tuple(fc.option(requestIdArb, { nil: undefined }), fc.option(printable, { nil: undefined }))
    .map(([id, last]) => () => {
      const q = new URLSearchParams();
      if (id) q.set("requestId", id());
      if (last !== undefined) q.set("lastEventId", last);
      return `/gateway/v1/events?${q}`;
    }),
  segmentArb.map((s) => () => `/docs/${s}`),
  fc
    .constantFrom(
      "/docs",
      "/docs/",
      "/openapi.json",
      "/healthz",
      "/readyz",
      "/",
      "//",
      "/ess/rest/scheduler/v1/requests",
    )
    .map((p) => () => p),
  fc.array(segmentArb, { maxLength: 5 }).map((segs) => () => `/${segs.join("/")}`),
  fc.array(segmentArb, { maxLength: 3 }).map((segs) => () => `${ESS}/${segs.join("/")}`),
);

const methodArb = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE");

// Every declared route, from the declarations themselves: a route added later is probed without
// touching this file. Path parameters take live, plausible and hostile values; query parameters are the
// route's declared ones (plus strays) with values built from the query grammar or random text.

const subscriptionIdArb = fc.oneof(
  fc.constant(() => live.subscriptionId),
  fc.stringMatching(/^[0-9a-f]{16}$/).map((s) => () => s),
  fc.constantFrom(...SPECIAL_NAMES).map((s) => () => s),
  printable.map((s) => () => encodeURIComponent(s)),
);
const paramArbs: Record<string, fc.Arbitrary<() => string>> = {
  requestId: requestIdArb,
  subscriptionId: subscriptionIdArb,
};
const timeArb = fc.oneof(
  fc.constantFrom("2026-11-30T08:00:00Z", "2026-11-30T08:00:00.123+02:00", "0", "999999999999999", "1e3", "now"),
  fc.bigInt({ min: -1n, max: 2n ** 70n }).map(String),
  printable,
);
const fieldNameArb = fc.constantFrom(
  "state",
  "requestId",
  "submissionTime",
  "history",
  "requestParameters",
  "jobDefinitionId",
  ...SPECIAL_NAMES,
  "",
);
const clauseArb = fc.oneof(
  fc
    .array(fc.constantFrom(...STATE_NAMES, "running", "NOPE", ...SPECIAL_NAMES), { minLength: 1, maxLength: 4 })
    .map((xs) => `state=${xs.join(",")}`),
  fc
    .tuple(fc.constantFrom(...QUERY_TEXT_FIELDS, ...SPECIAL_NAMES), fc.oneof(printable, latin1))
    .map(([f, v]) => `${f}=${v}`),
  fc
    .tuple(fc.constantFrom(...QUERY_TIME_FIELDS), fc.constantFrom(">=", ">", "<=", "<", "=", "=>", "!="), timeArb)
    .map(([f, op, v]) => `${f}${op}${v}`),
  fc.constantFrom("isTimedOut=true", "isTimedOut=false", "isTimedOut=maybe", "", "=", "'", "''", "state='RUNNING;'"),
  latin1,
);
const queryValueArbs: Record<string, fc.Arbitrary<string>> = {
  q: fc.array(clauseArb, { maxLength: 5 }).map((xs) => xs.join(";")),
  orderBy: fc.oneof(
    fc
      .tuple(
        fc.constantFrom(...QUERY_ORDER_FIELDS, ...QUERY_TIME_FIELDS, "state"),
        fc.constantFrom("", ":asc", ":desc", ":x"),
      )
      .map(([f, d]) => f + d),
    latin1,
  ),
  fields: fc.array(fieldNameArb, { maxLength: 5 }).map((xs) => xs.join(",")),
  excludeFields: fc.array(fieldNameArb, { maxLength: 5 }).map((xs) => xs.join(",")),
  limit: fc.oneof(fc.integer({ min: -5, max: 1000 }).map(String), fc.constantFrom("1e2", "0x10", "", "NaN"), latin1),
};
const anyQueryValue = fc.oneof(latin1, fc.bigInt({ min: -10n, max: 2n ** 70n }).map(String), fc.constant(""));

/** The query parameter names a route declares. */
const queryNames = (route: RouteDeclaration): string[] => Object.keys(route.request?.query?.shape ?? {});

/** Any call of one declared route: its path with random parameters, its query, often its own method. */
function declaredCallArb(
  route: RouteDeclaration,
): fc.Arbitrary<{ route: RouteDeclaration; method: string; url: () => string }> {
  const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
  const params = fc.tuple(...names.map((n) => paramArbs[n] ?? printable.map((v) => () => encodeURIComponent(v))));
  const declared = queryNames(route);
  const query = fc.array(
    fc.oneof(
      ...(declared.length > 0
        ? [
            fc
              .constantFrom(...declared)
              .chain((k) => fc.tuple(fc.constant(k), fc.oneof(queryValueArbs[k] ?? anyQueryValue, anyQueryValue))),
          ]
        : []),
      fc.tuple(
        fc.constantFrom("fields", "q", "limit", "cursor", "requestId", "lastEventId", ...SPECIAL_NAMES),
        anyQueryValue,
      ),
    ),
    { maxLength: 4 },
  );
  const tail = route.subtree ? fc.option(segmentArb, { nil: undefined }) : fc.constant(undefined);
  const method = fc.oneof(
    { weight: 3, arbitrary: fc.constant(route.method.toUpperCase()) },
    { weight: 1, arbitrary: methodArb },
  );
  return fc.tuple(params, query, tail, method).map(([ps, qs, t, m]) => ({
    route,
    method: m,
    url: () => {
      let i = 0;
      let path = route.path.replace(/\{\w+\}/g, () => (ps[i++] as () => string)());
      if (t !== undefined) path += `/${t}`;
      const search = new URLSearchParams(qs).toString();
      return search ? `${path}?${search}` : path;
    },
  }));
}

const declaredGatewayCall = fc.oneof(...GATEWAY_ROUTES.map(declaredCallArb));
const declaredAdminCall = fc.oneof(...ADMIN_ROUTES.map(declaredCallArb));
const routeKey = (r: RouteDeclaration) => `${r.method.toUpperCase()} ${r.path}`;

const mediaTypeArb = fc.option(
  fc.oneof(
    fc.constantFrom(
      "application/json",
      "application/json; charset=utf-8",
      "application/vnd.oracle.resource+json",
      "application/vnd.oracle.resource+json; charset=latin1",
      "APPLICATION/JSON",
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      "application/json;;;",
      ";",
      "",
    ),
    latin1,
  ),
  { nil: undefined },
);

const callbackLike = fc.record(
  {
    requestHandle: fc.oneof(fc.constant("<live>"), fc.string(), fc.anything(), fc.constantFrom(...SPECIAL_NAMES)),
    status: fc.oneof(fc.constantFrom<string>(...CALLBACK_STATUSES, "success"), fc.anything()),
    statusMessage: fc.oneof(fc.string({ maxLength: 1200 }), fc.anything()),
    requestExecutionContext: fc.oneof(fc.string(), fc.constant("<context>")),
    callbackUrl: fc.oneof(fc.webUrl(), fc.string()),
    __proto__: fc.anything(),
    constructor: fc.anything(),
  },
  { requiredKeys: [] },
);

const bodyArb: fc.Arbitrary<() => string | Uint8Array | undefined> = fc.oneof(
  fc.constant(() => undefined),
  fc.json().map((j) => () => j),
  callbackLike.map((b) => () => JSON.stringify(b).replaceAll("<live>", live.handle)),
  fc.string({ maxLength: 3000 }).map((s) => () => s),
  fc.uint8Array({ maxLength: 600 }).map((a) => () => a),
  fc
    .constantFrom('{"status": ', "[", "{", '"', "nul", "1e999999", "[".repeat(5000), '{"a":'.repeat(3000))
    .map((s) => () => s),
);

const headerArb = fc.record(
  {
    authorization: fc.oneof(
      printable,
      printable.map((s) => `Basic ${Buffer.from(s).toString("base64")}`),
      printable.map((s) => `Bearer ${s}`),
      fc.constantFrom("Basic", "Basic ", "Bearer", "Basic !!!", "Basic Zm9v", `Basic ${"A".repeat(4000)}`),
    ),
    "idempotency-key": latin1,
    "last-event-id": fc.oneof(
      latin1,
      fc
        .tuple(fc.bigInt({ min: 0n, max: 2n ** 80n }), fc.bigInt({ min: 0n, max: 2n ** 80n }))
        .map(([a, b]) => `${a}-${b}`),
    ),
    "x-request-id": latin1,
    accept: latin1,
    "accept-encoding": latin1,
    "if-none-match": latin1,
    range: latin1,
    cookie: latin1,
    "x-forwarded-for": latin1,
  },
  { requiredKeys: [] },
);

// --- what must hold of every answer ------------------------------------------------------------

/** Text that only an internal failure would put in a body. */
const INTERNAL =
  /\n\s+at |node_modules|\/work\/|\/src\/|\.ts:\d+|\.js:\d+|\bERR\b|WRONGTYPE|NOSCRIPT|ReplyError|TypeError|RangeError|SyntaxError|ioredis|bullmq|\bLua\b/;

async function check(res: Response, what: string, secrets: string[] = []): Promise<void> {
  if (what.startsWith("HEAD") || what.startsWith("admin HEAD")) {
    // a HEAD answer carries no body: the status alone is checked
    expect(res.status, what).toBeLessThan(500);
    expect(ctx.errors, `${what}: logged as unexpected`).toEqual([]);
    return;
  }
  if (res.status < 400) {
    // a stream (SSE) answer: take what is there and hang up, as a client would
    // only the status matters here; the body may already be gone
    await res.body?.cancel().catch(() => {});
    return;
  }
  const text = await res.text();
  expect(res.status, `${what} → ${res.status} ${text}`).toBeLessThan(500);
  const parsed = simpleExceptionDetailSchema.safeParse(JSON.parse(text));
  expect(parsed.success, `${what}: not a SimpleExceptionDetail: ${text}`).toBe(true);
  if (!parsed.success) return;
  expect(parsed.data.status, what).toBe(res.status);
  expect(text, `${what}: internal detail in ${text}`).not.toMatch(INTERNAL);
  for (const s of secrets) if (s.length >= 6) expect(text, `${what}: echoes a secret`).not.toContain(s);
  expect(ctx.errors, `${what}: logged as unexpected`).toEqual([]);
}

const RUNS = Number(process.env.FC_RUNS ?? 300);

describe("hostile input never gets a 5xx", () => {
  it("any method, path, headers and body on the callback listener (anonymous and with credentials)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        methodArb,
        pathArb,
        headerArb,
        mediaTypeArb,
        bodyArb,
        async (withAuth, method, path, headers, type, body) => {
          const url = path();
          const h: Record<string, string> = { ...headers };
          if (type !== undefined) h["content-type"] = type;
          const b = method === "GET" || method === "HEAD" ? undefined : body();
          const res = await (withAuth ? secured : anonymous).request(url, { method, headers: h, body: b ?? null });
          await check(res, `${method} ${url}`, [live.handle]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("every declared route (callback and admin listeners) with random parameters, queries, headers and bodies", async () => {
    const reached = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.constant("gateway" as const), declaredGatewayCall),
          fc.tuple(fc.constant("admin" as const), declaredAdminCall),
        ),
        fc.boolean(),
        headerArb,
        mediaTypeArb,
        bodyArb,
        async ([listener, call], withAuth, headers, type, body) => {
          reached.add(`${listener} ${routeKey(call.route)}`);
          const url = call.url();
          const h: Record<string, string> = { ...headers };
          if (type !== undefined) h["content-type"] = type;
          const b = call.method === "GET" || call.method === "HEAD" ? undefined : body();
          const app = listener === "admin" ? admin : withAuth ? secured : anonymous;
          const res = await app.request(url, { method: call.method, headers: h, body: b ?? null });
          await check(res, `${listener === "admin" ? "admin " : ""}${call.method} ${url}`, [live.handle]);
        },
      ),
      { numRuns: RUNS },
    );
    expect(reached.size).toBeGreaterThan(1);
  });

  it("each declared route in turn, so none is left to chance", async () => {
    const per = Math.max(3, Math.ceil(RUNS / 30));
    const listeners = [
      ...GATEWAY_ROUTES.map((r) => ["gateway", r] as const),
      ...ADMIN_ROUTES.map((r) => ["admin", r] as const),
    ];
    for (const [listener, route] of listeners) {
      const samples = fc.sample(fc.tuple(declaredCallArb(route), headerArb, mediaTypeArb, bodyArb), per);
      for (const [call, headers, type, body] of samples) {
        const url = call.url();
        const h: Record<string, string> = { ...headers };
        if (type !== undefined) h["content-type"] = type;
        const b = call.method === "GET" || call.method === "HEAD" ? undefined : body();
        const app = listener === "admin" ? admin : anonymous;
        const res = await app.request(url, { method: call.method, headers: h, body: b ?? null });
        await check(res, `${listener === "admin" ? "admin " : ""}${call.method} ${url} (${routeKey(route)})`, [
          live.handle,
        ]);
      }
    }
  });

  it("any body on every body-taking route of a registered request", async () => {
    const ops = ["executionStatus", "checkInCancelling", "subscribe", "cancel", "forceCancel"];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ops.map((op) => `${ESS}/<id>/${op}`), "/gateway/v1/requests/<id>/executions"),
        fc.constantFrom("POST", "DELETE"),
        mediaTypeArb,
        bodyArb,
        fc.option(latin1, { nil: undefined }),
        async (template, method, type, body, idemKey) => {
          const url = template.replace("<id>", live.id);
          const h: Record<string, string> = {};
          if (type !== undefined) h["content-type"] = type;
          if (idemKey !== undefined) h["idempotency-key"] = idemKey;
          const res = await anonymous.request(url, { method, headers: h, body: body() ?? null });
          await check(res, `${method} ${url}`, [live.handle]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("any path, method and body on the admin listener", async () => {
    const adminPath = fc.oneof(
      fc.constantFrom(
        "/admin/dead-letters",
        "/admin/dead-letters/replay",
        "/admin/dead-letters/purge",
        "/metrics",
        "/healthz",
        "/readyz",
      ),
      segmentArb.map((s) => `/admin/dead-letters/${s}`),
      segmentArb.map((s) => `/admin/dead-letters/${s}/replay`),
      segmentArb.map((s) => `/admin/dead-letters/replays/${s}`),
      segmentArb.map((s) => `/admin/dead-letters/replays/${s}/cancel`),
      fc
        .tuple(
          fc.constantFrom("limit", "cursor", "partition", "requestId", "from", "to", "reason", "status", "__proto__"),
          latin1,
        )
        .map(([k, v]) => `/admin/dead-letters?${new URLSearchParams({ [k]: v })}`),
    );
    await fc.assert(
      fc.asyncProperty(methodArb, adminPath, mediaTypeArb, bodyArb, async (method, url, type, body) => {
        const h: Record<string, string> = {};
        if (type !== undefined) h["content-type"] = type;
        const b = method === "GET" || method === "HEAD" ? undefined : body();
        const res = await admin.request(url, { method, headers: h, body: b ?? null });
        await check(res, `admin ${method} ${url}`);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("specific hostile inputs", () => {
  it.each(SPECIAL_NAMES)("GET /docs/%s is a 404, not a prototype lookup", async (name) => {
    const res = await anonymous.request(`/docs/${name}`);
    expect(res.status).toBe(404);
    await check(res, name);
  });

  it.each([
    "18446744073709551616-0",
    "0-18446744073709551616",
    "99999999999999999999-0/1",
    "18446744073709551616-18446744073709551616",
  ])("Last-Event-ID %s is a 400 ESS-40009 before the stream starts", async (id) => {
    const res = await anonymous.request("/gateway/v1/events", { headers: { "last-event-id": id } });
    expect(res.status).toBe(400);
    const body = simpleExceptionDetailSchema.parse(await res.json());
    expect(body.errorCode).toBe("ESS-40009");
    expect(body.detail).toMatch(/18446744073709551615/);
  });

  it("Last-Event-ID at the largest stream id still opens the stream", async () => {
    const res = await anonymous.request("/gateway/v1/events", {
      headers: { "last-event-id": "18446744073709551615-18446744073709551615" },
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it("any Last-Event-ID is a 200 stream or a 400 ESS-40009", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          latin1,
          fc
            .tuple(fc.bigInt({ min: 0n, max: 2n ** 66n }), fc.bigInt({ min: 0n, max: 2n ** 66n }), fc.nat(20))
            .map(([a, b, p]) => `${a}-${b}/${p}`),
        ),
        async (id) => {
          const res = await anonymous.request(`/gateway/v1/events?requestId=${live.id}`, {
            headers: { "last-event-id": id },
          });
          if (res.status === 200) {
            // the first read of the streams follows "ready" at once: it must not fail
            const reader = (res.body as ReadableStream<Uint8Array>).getReader();
            let text = "";
            const until = Date.now() + 150;
            while (Date.now() < until && !text.includes("event: error")) {
              const chunk = await Promise.race([
                reader.read(),
                new Promise<undefined>((r) => setTimeout(() => r(undefined), until - Date.now())),
              ]);
              if (!chunk || chunk.done) break;
              text += new TextDecoder().decode(chunk.value);
            }
            await reader.cancel();
            expect(text).toContain("event: ready");
            expect(text, `Last-Event-ID ${id}`).not.toContain("event: error");
            expect(ctx.errors).toEqual([]);
            return;
          }
          expect(res.status).toBe(400);
          expect(simpleExceptionDetailSchema.parse(await res.json()).errorCode).toBe("ESS-40009");
        },
      ),
      { numRuns: 100 },
    );
  });

  it("malformed JSON is answered with its position, never with its text", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.json(),
        fc.nat(),
        fc.constantFrom("}", "{", '"', ",", "x", "\u0001"),
        async (json, at, junk) => {
          const secret = `SECRET${Math.random().toString(36).slice(2, 10)}`;
          const valid = JSON.stringify({ requestHandle: secret, status: "UPDATE", extra: JSON.parse(json) });
          const cut = Math.min(at % (valid.length + 1), valid.length);
          const text = valid.slice(0, cut) + junk + valid.slice(cut);
          let ok = true;
          try {
            JSON.parse(text);
          } catch {
            ok = false;
          }
          fc.pre(!ok);
          const res = await anonymous.request(`${ESS}/${live.id}/executionStatus`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: text,
          });
          expect(res.status).toBe(400);
          const body = simpleExceptionDetailSchema.parse(await res.json());
          expect(body.errorCode).toBe("ESS-40002");
          expect(body.detail).toMatch(/at line \d+, column \d+ \(character \d+\)/);
          expect(body.detail).not.toContain(secret.slice(0, 8));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("names line and column of a JSON error", async () => {
    const res = await anonymous.request(`${ESS}/${live.id}/executionStatus`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{\n  "requestHandle": "abcdefghijklmnop",\n  "status": UPDATE\n}',
    });
    const body = simpleExceptionDetailSchema.parse(await res.json());
    expect(body.detail).toBe("the body is not valid JSON: unexpected character at line 3, column 13 (character 54)");
  });
});

describe("public base URL", () => {
  it("Location and links[].href use PUBLIC_BASE_URL, not the client's Host", async () => {
    const auth = await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: true });
    const app = createApp({
      ...ctx.deps,
      publicBaseUrl: "https://ess.example.com/gw",
      ops: { auth, retryAfterSeconds: 1 },
    });
    const id = newRequestId();
    const reg = await app.request(`http://evil.example/gateway/v1/requests/${id}/executions`, {
      method: "POST",
      headers: { host: "evil.example" },
    });
    expect(reg.headers.get("location")).toBe(`https://ess.example.com/gw/ess/rest/scheduler/v1/requests/${id}`);
    const details = await app.request(`http://evil.example${ESS}/${id}`, { headers: { host: "evil.example" } });
    const { links } = (await details.json()) as { links: { rel: string; href: string }[] };
    expect(links.length).toBeGreaterThan(1);
    for (const l of links) expect(l.href.startsWith(`https://ess.example.com/gw${ESS}/${id}`)).toBe(true);
    const cancel = await app.request(`http://evil.example${ESS}/${id}/cancel`, {
      method: "POST",
      headers: { host: "evil.example" },
    });
    const { link } = (await cancel.json()) as { link: { href: string } };
    expect(link.href).toBe(`https://ess.example.com/gw${ESS}/${id}`);
  });

  it("without PUBLIC_BASE_URL the links follow the URL the request came in on", async () => {
    const id = newRequestId();
    const reg = await anonymous.request(`http://gw.internal:8080/gateway/v1/requests/${id}/executions`, {
      method: "POST",
    });
    expect(reg.headers.get("location")).toBe(`http://gw.internal:8080${ESS}/${id}`);
  });
});
