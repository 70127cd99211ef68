import {
  buildOpenApi,
  type CallbackJob,
  documentedRoutes,
  formatExecutionContext,
  simpleExceptionDetailSchema,
} from "@ess/contract";
import { callbackJobId, createRedis, digest, RequestStore, waitReady } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createApp } from "./app.js";
import { ACCESS_RULES, ruleFor } from "./auth/access-rules.js";
import { Authenticator } from "./auth/authenticator.js";
import type { GatewayDeps, OperationsDeps } from "./context.js";
import { Readiness } from "./ops/readiness.js";
import { RateLimiter } from "./rate-limit.js";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 2 });
const T = { job: "oa-job", scheduler: "oa-sched", admin: "oa-admin" };
const dead = createRedis("redis://127.0.0.1:1", "gateway", { commandTimeoutMs: 200 });
dead.on("error", () => {});
afterAll(() => dead.disconnect());

type App = ReturnType<typeof createApp>;
let app: App;
let limited: App;
let down: App;

async function build(store: RequestStore, extra: Partial<OperationsDeps> = {}): Promise<App> {
  const ops: OperationsDeps = {
    auth: await Authenticator.fromConfig({
      AUTH_USERS: "",
      AUTH_TOKENS: `j:job:${T.job},s:scheduler:${T.scheduler},a:admin:${T.admin}`,
      ALLOW_ANONYMOUS: false,
    }),
    readiness: new Readiness(store.redis),
    retryAfterSeconds: 1,
    ...extra,
  };
  const deps: GatewayDeps = { ...ctx.deps, store, ops };
  return createApp(deps);
}

beforeAll(async () => {
  await waitReady(ctx.redis);
  app = await build(ctx.store);
  limited = await build(ctx.store, { rateLimit: new RateLimiter(0.001, 1) });
  down = await build(new RequestStore(dead, ctx.keys));
});

const auth = (t: string) => ({ authorization: `Bearer ${t}` });
const json = (t: string) => ({ "content-type": "application/json", ...auth(t) });
const cbPath = (id: string) => `/ess/rest/scheduler/v1/requests/${id}/executionStatus`;
const regPath = (id: string) => `/gateway/v1/requests/${id}/executions`;
const getPath = (id: string) => `/ess/rest/scheduler/v1/requests/${id}`;
const QUERY = "/ess/rest/scheduler/v1/requests";
const opPath = (id: string, op: string) => `${getPath(id)}/${op}`;
const EVENTS = "/gateway/v1/events";

async function registered(): Promise<{ id: string; handle: string }> {
  const id = newRequestId();
  const res = await app.request(regPath(id), { method: "POST", headers: auth(T.scheduler) });
  const { requestHandle } = (await res.json()) as { requestHandle: string };
  return { id, handle: requestHandle };
}

const cb = (a: App, id: string, handle: string, token = T.job) =>
  a.request(cbPath(id), {
    method: "POST",
    headers: json(token),
    body: JSON.stringify({ requestHandle: handle, status: "UPDATE" }),
  });

/** A POST of a scheduler-side operation (no body) with the scheduler's token. */
const schedPost = (a: App, id: string, op: "cancel" | "forceCancel", token = T.scheduler) =>
  a.request(opPath(id, op), { method: "POST", headers: auth(token) });

const checkIn = (a: App, id: string, requestExecutionContext: unknown, token = T.job) =>
  a.request(opPath(id, "checkInCancelling"), {
    method: "POST",
    headers: json(token),
    body: JSON.stringify({ requestExecutionContext }),
  });

const sub = (a: App, id: string, method: "POST" | "DELETE", callbackUrl: unknown, token = T.scheduler) =>
  a.request(opPath(id, "subscribe"), { method, headers: json(token), body: JSON.stringify({ callbackUrl }) });

/** Checks the errorCode (and title, when given) of an error answer; returns it unread. */
async function expectCode(res: Response, errorCode: string, title?: string): Promise<Response> {
  const body = simpleExceptionDetailSchema.parse(await res.clone().json());
  expect(body.errorCode).toBe(errorCode);
  if (title) expect(body.title).toBe(title);
  return res;
}
const UNSUPPORTED = "Unsupported state for operation";

/** A registered request that is CANCELLING (cancelled while RUNNING). */
async function cancelling(): Promise<{ id: string; handle: string }> {
  const r = await registered();
  expect((await schedPost(app, r.id, "cancel")).status).toBe(200);
  return r;
}

const SUBS = (id: string) => `/gateway/v1/requests/${id}/subscriptions`;
const NO_SUB = "0123456789abcdef";

/** A registered request with a webhook subscription; its first event's id (the registration's). */
async function subscribed(): Promise<{ id: string; subId: string; eventId: string }> {
  const r = await registered();
  const res = await sub(app, r.id, "POST", "https://hooks.example/ess");
  const { subscriptionId } = (await res.json()) as { subscriptionId: string };
  const p = ctx.keys.partition(r.id);
  const entries = await ctx.redis.xrange(ctx.keys.events(p), "-", "+");
  const mine = entries.find(([, f]) => f[f.indexOf("requestId") + 1] === r.id);
  return { id: r.id, subId: subscriptionId, eventId: `${mine?.[0]}/${p}` };
}

const subGet = (a: App, path: string, token = T.scheduler) => a.request(path, { headers: auth(token) });
const subPost = (a: App, path: string, body: unknown, token = T.scheduler) =>
  a.request(path, { method: "POST", headers: json(token), body: JSON.stringify(body) });

/** Reads the first bytes of an SSE answer, ends the stream, and returns an answer with just those bytes. */
async function firstBytes(res: Response): Promise<Response> {
  const reader = res.body?.getReader();
  if (!reader) throw new Error("no body");
  const { value } = await reader.read();
  await reader.cancel();
  return new Response(value ?? null, { status: res.status, headers: res.headers });
}

/** Twice through the limiter: the second answer is the 429. */
async function secondOf(make: () => Response | Promise<Response>): Promise<Response> {
  await make();
  return make();
}

/** One request per documented (operation, status) that makes the app give that answer. */
const SCENARIOS: Record<string, () => Response | Promise<Response>> = {
  "postExecutionStatus 200": async () => {
    const r = await registered();
    return cb(app, r.id, r.handle);
  },
  "postExecutionStatus 400": async () => {
    const r = await registered();
    return app.request(cbPath(r.id), { method: "POST", headers: json(T.job), body: '{"requestHandle":"x"}' });
  },
  "postExecutionStatus 401": () => app.request(cbPath("1"), { method: "POST" }),
  "postExecutionStatus 403": async () => {
    const r = await registered();
    return cb(app, r.id, "someone-elses-handle");
  },
  "postExecutionStatus 404": () => cb(app, newRequestId(), "h"),
  "postExecutionStatus 405": () => app.request(cbPath("1"), { headers: auth(T.job) }),
  "postExecutionStatus 409": async () => {
    const r = await registered();
    // the record a gateway (ENQUEUE_MODE=queue) leaves while its admit → enqueue of this very call is under way
    const fingerprint = digest(`UPDATE\n${r.handle}\n\u0000`);
    await ctx.store.admit(r.id, r.handle, "UPDATE", { key: "k-pending", fingerprint }, 60_000);
    return app.request(cbPath(r.id), {
      method: "POST",
      headers: { ...json(T.job), "idempotency-key": "k-pending" },
      body: JSON.stringify({ requestHandle: r.handle, status: "UPDATE" }),
    });
  },
  "postExecutionStatus 422": async () => {
    const r = await registered();
    const send = (status: string) =>
      app.request(cbPath(r.id), {
        method: "POST",
        headers: { ...json(T.job), "idempotency-key": "k-1" },
        body: JSON.stringify({ requestHandle: r.handle, status }),
      });
    expect((await send("UPDATE")).status).toBe(200);
    return send("SUCCESS");
  },
  "postExecutionStatus 413": () =>
    app.request(cbPath("1"), {
      method: "POST",
      headers: json(T.job),
      body: JSON.stringify({ requestHandle: "x".repeat(20000), status: "UPDATE" }),
    }),
  "postExecutionStatus 415": () =>
    app.request(cbPath("1"), { method: "POST", headers: { ...auth(T.job), "content-type": "text/plain" }, body: "x" }),
  "postExecutionStatus 429": () => secondOf(() => cb(limited, "1", "h")),
  "postExecutionStatus 503": () => cb(down, "1", "h"),

  "registerExecution 201": () => app.request(regPath(newRequestId()), { method: "POST", headers: auth(T.scheduler) }),
  "registerExecution 400": () => app.request(regPath("abc"), { method: "POST", headers: auth(T.scheduler) }),
  "registerExecution 401": () => app.request(regPath("1"), { method: "POST" }),
  "registerExecution 403": () => app.request(regPath("1"), { method: "POST", headers: auth(T.job) }),
  "registerExecution 409": async () => {
    const r = await registered();
    const ok = await app.request(cbPath(r.id), {
      method: "POST",
      headers: json(T.job),
      body: JSON.stringify({ requestHandle: r.handle, status: "SUCCESS" }),
    });
    expect(ok.status).toBe(200);
    // apply the queued callback as the worker would (no worker runs in this file)
    const p = ctx.keys.partition(r.id);
    const job = await ctx.queues.queue(p).getJob(callbackJobId(r.id, 1));
    await ctx.store.apply(r.id, "cb", job?.data as CallbackJob);
    return app.request(regPath(r.id), { method: "POST", headers: auth(T.scheduler) });
  },
  "registerExecution 415": () =>
    app.request(regPath("1"), {
      method: "POST",
      headers: { ...auth(T.scheduler), "content-type": "text/plain" },
      body: "x",
    }),
  "registerExecution 429": () =>
    secondOf(() => limited.request(regPath(newRequestId()), { method: "POST", headers: auth(T.scheduler) })),
  "registerExecution 503": () => down.request(regPath("1"), { method: "POST", headers: auth(T.scheduler) }),

  "getRequest 200": async () => {
    const r = await registered();
    return app.request(getPath(r.id), { headers: auth(T.scheduler) });
  },
  "getRequest 400": () => app.request(getPath("0"), { headers: auth(T.scheduler) }),
  "getRequest 401": () => app.request(getPath("1")),
  "getRequest 403": () => app.request(getPath("1"), { headers: auth(T.job) }),
  "getRequest 404": () => app.request(getPath(newRequestId()), { headers: auth(T.scheduler) }),
  "getRequest 429": () => secondOf(() => limited.request(getPath("1"), { headers: auth(T.admin) })),
  "getRequest 503": () => down.request(getPath("1"), { headers: auth(T.scheduler) }),

  "queryRequests 200": async () => {
    await registered();
    return app.request(`${QUERY}?q=state=RUNNING&limit=1`, { headers: auth(T.scheduler) });
  },
  "queryRequests 400": () => app.request(`${QUERY}?q=colour=red`, { headers: auth(T.scheduler) }),
  "queryRequests 401": () => app.request(QUERY),
  "queryRequests 403": () => app.request(QUERY, { headers: auth(T.job) }),
  "queryRequests 429": () => secondOf(() => limited.request(QUERY, { headers: auth(T.admin) })),
  "queryRequests 503": () => down.request(QUERY, { headers: auth(T.scheduler) }),

  "cancelRequest 200": async () => {
    const r = await registered();
    return schedPost(app, r.id, "cancel");
  },
  "cancelRequest 400": async () => {
    await expectCode(await schedPost(app, "abc", "cancel"), "ESS-40001");
    // a CANCELLING request is not cancellable again
    const r = await cancelling();
    return expectCode(await schedPost(app, r.id, "cancel"), "ESS-40005", UNSUPPORTED);
  },
  "cancelRequest 401": () => app.request(opPath("1", "cancel"), { method: "POST" }),
  "cancelRequest 403": () => schedPost(app, "1", "cancel", T.job),
  "cancelRequest 404": () => schedPost(app, newRequestId(), "cancel"),
  "cancelRequest 429": () => secondOf(() => schedPost(limited, newRequestId(), "cancel")),
  "cancelRequest 503": () => schedPost(down, "1", "cancel"),

  "forceCancelRequest 200": async () => {
    const r = await cancelling();
    // CANCELLING began longer ago than the default quiet period (30 min)
    const key = ctx.keys.request(ctx.keys.partition(r.id), r.id);
    await ctx.redis.hset(key, "cancellingSince", Date.now() - 31 * 60000);
    return schedPost(app, r.id, "forceCancel");
  },
  "forceCancelRequest 400": async () => {
    await expectCode(await schedPost(app, "0", "forceCancel"), "ESS-40001");
    const running = await registered();
    await expectCode(await schedPost(app, running.id, "forceCancel"), "ESS-40005", UNSUPPORTED);
    const r = await cancelling();
    return expectCode(await schedPost(app, r.id, "forceCancel"), "ESS-40007");
  },
  "forceCancelRequest 401": () => app.request(opPath("1", "forceCancel"), { method: "POST" }),
  "forceCancelRequest 403": () => schedPost(app, "1", "forceCancel", T.job),
  "forceCancelRequest 404": () => schedPost(app, newRequestId(), "forceCancel"),
  "forceCancelRequest 429": () => secondOf(() => schedPost(limited, newRequestId(), "forceCancel")),
  "forceCancelRequest 503": () => schedPost(down, "1", "forceCancel"),

  "checkInCancelling 200": async () => {
    const r = await registered();
    const running = await checkIn(app, r.id, formatExecutionContext(r.id, r.handle));
    expect(running.status).toBe(200);
    expect(await running.json()).toBe(false);
    expect(running.headers.get("x-ess-cancel-requested")).toBeNull();
    expect((await schedPost(app, r.id, "cancel")).status).toBe(200);
    const res = await checkIn(app, r.id, formatExecutionContext(r.id, r.handle));
    expect(res.headers.get("x-ess-cancel-requested")).toBe("true");
    expect(await res.clone().json()).toBe(true);
    return res;
  },
  "checkInCancelling 400": async () => {
    const r = await registered();
    await expectCode(await checkIn(app, r.id, 42), "ESS-40003");
    await expectCode(await checkIn(app, r.id, formatExecutionContext(newRequestId(), r.handle)), "ESS-40008");
    return expectCode(await checkIn(app, r.id, "not-a-context"), "ESS-40008");
  },
  "checkInCancelling 401": () => app.request(opPath("1", "checkInCancelling"), { method: "POST" }),
  "checkInCancelling 403": async () => {
    await expectCode(await checkIn(app, "1", formatExecutionContext("1", "h"), T.scheduler), "ESS-40303");
    const r = await registered();
    return expectCode(await checkIn(app, r.id, formatExecutionContext(r.id, "someone-elses-handle")), "ESS-40301");
  },
  "checkInCancelling 404": () => {
    const id = newRequestId();
    return checkIn(app, id, formatExecutionContext(id, "h"));
  },
  "checkInCancelling 415": () =>
    app.request(opPath("1", "checkInCancelling"), {
      method: "POST",
      headers: { ...auth(T.job), "content-type": "text/plain" },
      body: "x",
    }),
  "checkInCancelling 429": () => secondOf(() => checkIn(limited, "1", formatExecutionContext("1", "h"))),
  "checkInCancelling 503": () => checkIn(down, "1", formatExecutionContext("1", "h")),

  "subscribe 200": async () => {
    const r = await registered();
    return sub(app, r.id, "POST", "https://hooks.example/ess");
  },
  "subscribe 400": async () => {
    const r = await registered();
    return expectCode(await sub(app, r.id, "POST", "ftp://hooks.example/ess"), "ESS-40003");
  },
  "subscribe 401": () => app.request(opPath("1", "subscribe"), { method: "POST" }),
  "subscribe 403": () => sub(app, "1", "POST", "https://hooks.example/ess", T.job),
  "subscribe 404": () => sub(app, newRequestId(), "POST", "https://hooks.example/ess"),
  "subscribe 415": () =>
    app.request(opPath("1", "subscribe"), {
      method: "POST",
      headers: { ...auth(T.scheduler), "content-type": "text/plain" },
      body: "x",
    }),
  "subscribe 429": () => secondOf(() => sub(limited, "1", "POST", "https://hooks.example/ess")),
  "subscribe 503": () => sub(down, "1", "POST", "https://hooks.example/ess"),

  "unsubscribe 200": async () => {
    const r = await registered();
    expect((await sub(app, r.id, "POST", "https://hooks.example/ess")).status).toBe(200);
    const res = await sub(app, r.id, "DELETE", "https://hooks.example/ess");
    expect(await res.clone().json()).toMatchObject({ subscribed: false, removed: true });
    return res;
  },
  "unsubscribe 400": async () => {
    const r = await registered();
    return expectCode(await sub(app, r.id, "DELETE", "http://user:pw@hooks.example/ess"), "ESS-40003");
  },
  "unsubscribe 401": () => app.request(opPath("1", "subscribe"), { method: "DELETE" }),
  "unsubscribe 403": () => sub(app, "1", "DELETE", "https://hooks.example/ess", T.job),
  "unsubscribe 404": () => sub(app, newRequestId(), "DELETE", "https://hooks.example/ess"),
  "unsubscribe 415": () =>
    app.request(opPath("1", "subscribe"), {
      method: "DELETE",
      headers: { ...auth(T.scheduler), "content-type": "text/plain" },
      body: "x",
    }),
  "unsubscribe 429": () => secondOf(() => sub(limited, "1", "DELETE", "https://hooks.example/ess")),
  "unsubscribe 503": () => sub(down, "1", "DELETE", "https://hooks.example/ess"),

  "getEvents 200": async () => {
    const r = await registered();
    const res = await app.request(`${EVENTS}?requestId=${r.id}`, {
      headers: { ...auth(T.scheduler), "last-event-id": "0-0" },
    });
    const first = await firstBytes(res);
    expect(await first.clone().text()).toMatch(/^event: ready\n/);
    return first;
  },
  "getEvents 400": async () => {
    await expectCode(await app.request(`${EVENTS}?requestId=abc`, { headers: auth(T.scheduler) }), "ESS-40001");
    const res = await app.request(EVENTS, { headers: { ...auth(T.scheduler), "last-event-id": "nope" } });
    return expectCode(res, "ESS-40009");
  },
  "getEvents 401": () => app.request(EVENTS),
  "getEvents 403": () => app.request(EVENTS, { headers: auth(T.job) }),
  // a bad requestId: the first call (a 400, no stream opened) takes the credential's one token
  "getEvents 429": () => secondOf(() => limited.request(`${EVENTS}?requestId=0`, { headers: auth(T.scheduler) })),
  "getEvents 503": () => down.request(EVENTS, { headers: auth(T.scheduler) }),

  "listSubscriptions 200": async () => {
    const { id, subId } = await subscribed();
    const res = await subGet(app, SUBS(id));
    expect(await res.clone().json()).toMatchObject({ count: 1, items: [{ id: subId, since: 1, next: 2 }] });
    return res;
  },
  "listSubscriptions 400": async () => expectCode(await subGet(app, SUBS("abc")), "ESS-40001"),
  "listSubscriptions 401": () => app.request(SUBS("1")),
  "listSubscriptions 403": () => subGet(app, SUBS("1"), T.job),
  "listSubscriptions 404": async () => expectCode(await subGet(app, SUBS(newRequestId())), "ESS-40401"),
  "listSubscriptions 429": () => secondOf(() => subGet(limited, SUBS("1"))),
  "listSubscriptions 503": () => subGet(down, SUBS("1")),

  "getSubscription 200": async () => {
    const { id, subId } = await subscribed();
    return subGet(app, `${SUBS(id)}/${subId}`);
  },
  "getSubscription 400": async () => expectCode(await subGet(app, `${SUBS("1")}/XYZ`), "ESS-40003"),
  "getSubscription 401": () => app.request(`${SUBS("1")}/${NO_SUB}`),
  "getSubscription 403": () => subGet(app, `${SUBS("1")}/${NO_SUB}`, T.job),
  "getSubscription 404": async () => {
    const r = await registered();
    await expectCode(await subGet(app, `${SUBS(newRequestId())}/${NO_SUB}`), "ESS-40401");
    return expectCode(await subGet(app, `${SUBS(r.id)}/${NO_SUB}`), "ESS-40402");
  },
  "getSubscription 429": () => secondOf(() => subGet(limited, `${SUBS("1")}/${NO_SUB}`)),
  "getSubscription 503": () => subGet(down, `${SUBS("1")}/${NO_SUB}`),

  "getDeliveries 200": async () => {
    const { id, subId } = await subscribed();
    return subGet(app, `${SUBS(id)}/${subId}/deliveries?limit=10`);
  },
  "getDeliveries 400": async () => {
    const { id, subId } = await subscribed();
    return expectCode(await subGet(app, `${SUBS(id)}/${subId}/deliveries?limit=0`), "ESS-40003");
  },
  "getDeliveries 401": () => app.request(`${SUBS("1")}/${NO_SUB}/deliveries`),
  "getDeliveries 403": () => subGet(app, `${SUBS("1")}/${NO_SUB}/deliveries`, T.job),
  "getDeliveries 404": async () => {
    const r = await registered();
    return expectCode(await subGet(app, `${SUBS(r.id)}/${NO_SUB}/deliveries`), "ESS-40402");
  },
  "getDeliveries 429": () => secondOf(() => subGet(limited, `${SUBS("1")}/${NO_SUB}/deliveries`)),
  "getDeliveries 503": () => subGet(down, `${SUBS("1")}/${NO_SUB}/deliveries`),

  "rotateSecret 200": async () => {
    const { id, subId } = await subscribed();
    return subPost(app, `${SUBS(id)}/${subId}/rotate`, { graceSeconds: 60 });
  },
  "rotateSecret 400": async () => {
    const { id, subId } = await subscribed();
    return expectCode(await subPost(app, `${SUBS(id)}/${subId}/rotate`, { secret: "hunter2" }), "ESS-40003");
  },
  "rotateSecret 401": () => app.request(`${SUBS("1")}/${NO_SUB}/rotate`, { method: "POST" }),
  "rotateSecret 403": () => subPost(app, `${SUBS("1")}/${NO_SUB}/rotate`, {}, T.job),
  "rotateSecret 404": async () => {
    const r = await registered();
    return expectCode(await subPost(app, `${SUBS(r.id)}/${NO_SUB}/rotate`, {}), "ESS-40402");
  },
  "rotateSecret 415": () =>
    app.request(`${SUBS("1")}/${NO_SUB}/rotate`, {
      method: "POST",
      headers: { ...auth(T.scheduler), "content-type": "text/plain" },
      body: "x",
    }),
  "rotateSecret 429": () => secondOf(() => subPost(limited, `${SUBS("1")}/${NO_SUB}/rotate`, {})),
  "rotateSecret 503": () => subPost(down, `${SUBS("1")}/${NO_SUB}/rotate`, {}),

  "redeliver 202": async () => {
    const { id, subId, eventId } = await subscribed();
    return subPost(app, `${SUBS(id)}/${subId}/redeliver`, { eventId });
  },
  "redeliver 400": async () => {
    const { id, subId } = await subscribed();
    return expectCode(await subPost(app, `${SUBS(id)}/${subId}/redeliver`, { eventId: "yesterday" }), "ESS-40003");
  },
  "redeliver 401": () => app.request(`${SUBS("1")}/${NO_SUB}/redeliver`, { method: "POST" }),
  "redeliver 403": () => subPost(app, `${SUBS("1")}/${NO_SUB}/redeliver`, { eventId: "1-0/0" }, T.job),
  "redeliver 404": async () => {
    const { id, subId } = await subscribed();
    // an event id of no entry of this request
    return expectCode(await subPost(app, `${SUBS(id)}/${subId}/redeliver`, { eventId: "1-0/0" }), "ESS-40402");
  },
  "redeliver 415": () =>
    app.request(`${SUBS("1")}/${NO_SUB}/redeliver`, {
      method: "POST",
      headers: { ...auth(T.scheduler), "content-type": "text/plain" },
      body: "x",
    }),
  "redeliver 429": () => secondOf(() => subPost(limited, `${SUBS("1")}/${NO_SUB}/redeliver`, { eventId: "1-0/0" })),
  "redeliver 503": () => subPost(down, `${SUBS("1")}/${NO_SUB}/redeliver`, { eventId: "1-0/0" }),

  "healthz 200": () => app.request("/healthz"),
  "readyz 200": () => app.request("/readyz"),
  "readyz 503": () => down.request("/readyz"),
};

const documented = documentedRoutes().flatMap((op) =>
  Object.entries(op.responses).map(([code, r]) => {
    const [mediaType, media] = Object.entries(r.content ?? {})[0] ?? [];
    const schema = media?.schema instanceof z.ZodType ? media.schema : undefined;
    return { op, code: Number(code), response: r, mediaType, schema };
  }),
);

describe("the OpenAPI description matches the app", () => {
  it("is served at /openapi.json as generated from the route declarations", async () => {
    const res = await app.request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    expect(doc).toEqual(JSON.parse(JSON.stringify(buildOpenApi({ version: "0.1.0" }))));
    for (const op of documentedRoutes()) expect(doc.paths[op.path]?.[op.method]).toBeDefined();
  });

  it("lists for each operation the roles the derived access table (ACCESS_RULES) enforces", () => {
    const doc = buildOpenApi();
    for (const op of documentedRoutes()) {
      const rule = ruleFor(ACCESS_RULES, op.method.toUpperCase(), op.path.replace("{requestId}", "42"));
      const operation = doc.paths[op.path]?.[op.method] as { "x-roles": string[] } | undefined;
      const roles = operation?.["x-roles"];
      expect(rule.operation, op.operationId).toBe(op.operation);
      expect(roles, op.operationId).toEqual(rule.roles === "public" ? [] : [...rule.roles, "admin"]);
    }
  });

  it("has a scenario for every documented answer and none for an undocumented one", () => {
    expect(Object.keys(SCENARIOS).sort()).toEqual(documented.map((d) => `${d.op.operationId} ${d.code}`).sort());
  });

  it.each(documented.map((d) => [`${d.op.method.toUpperCase()} ${d.op.path} → ${d.code}`, d] as const))(
    "%s",
    async (_name, { op, code, response, mediaType, schema }) => {
      const run = SCENARIOS[`${op.operationId} ${code}`];
      if (!run) throw new Error("no scenario");
      const res = await run();
      expect(res.status).toBe(code);
      if (mediaType && mediaType !== "application/json") {
        expect(res.headers.get("content-type")).toMatch(new RegExp(`^${mediaType}`));
      }
      const text = await res.text();
      if (schema) {
        const parsed = schema.safeParse(JSON.parse(text));
        expect(parsed.error?.issues ?? []).toEqual([]);
        if (schema === simpleExceptionDetailSchema) expect(JSON.parse(text).status).toBe(code);
      }
      for (const h of Object.keys(response.headers ?? {})) {
        if (h === "X-ESS-Cancel-Requested") continue; // only while cancelling
        expect(res.headers.get(h), h).not.toBeNull();
      }
      expect(res.headers.get("x-request-id")).not.toBeNull();
    },
  );
});
