import {
  callbackJobSchema,
  formatExecutionContext,
  simpleExceptionDetailSchema,
  WebhookAddressPolicy,
} from "@ess/contract";
import { JOB_CALLBACK } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext();
const R = "/ess/rest/scheduler/v1/requests";

/** The same deps with a quiet period of 5 minutes (tests move the clock by editing the hash). */
const quietApp = createApp({
  ...ctx.deps,
  scheduler: { forceCancelQuietMs: 5 * 60000, ssePollMs: 50 },
});

function post(path: string, body?: unknown, app = ctx.app, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: "POST",
    ...(body === undefined
      ? {}
      : {
          headers: { "content-type": "application/json", ...headers },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
  });
}

async function register(id: string, body: Record<string, unknown> = {}) {
  const res = await post(`/gateway/v1/requests/${id}/executions`, body);
  expect(res.status).toBe(201);
  return (await res.json()) as { requestHandle: string; execution: number; pausedState?: string | null };
}

async function problem(res: Response, status: number, errorCode: string) {
  expect(res.status).toBe(status);
  const body = simpleExceptionDetailSchema.parse(await res.json());
  expect(body.errorCode).toBe(errorCode);
  return body;
}

const hkey = (id: string) => ctx.keys.request(ctx.keys.partition(id), id);
const setFields = (id: string, ...kv: (string | number)[]) => ctx.redis.hset(hkey(id), ...kv);

async function details(id: string) {
  const res = await ctx.app.request(`${R}/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown> & { history: Record<string, unknown>[] };
}

/** The events of one request in its partition's stream, oldest first. */
async function eventsOf(id: string) {
  const entries = await ctx.redis.xrange(ctx.keys.events(ctx.keys.partition(id)), "-", "+");
  return entries
    .map(([, flat]) => Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]]]))))
    .filter((e) => e.requestId === id) as Record<string, string>[];
}

function callback(id: string, requestHandle: string, status: string) {
  return post(`${R}/${id}/executionStatus`, { requestHandle, status });
}

/** Applies every callback job of a request waiting in its queue, as the worker would. */
async function applyQueued(id: string) {
  const q = ctx.queues.queue(ctx.keys.partition(id));
  const jobs = await q.getJobs(["waiting", "prioritized", "delayed"]);
  const mine = jobs
    .filter((j) => j.name === JOB_CALLBACK && j.data.requestId === id)
    .map((j) => callbackJobSchema.parse(j.data))
    .sort((a, b) => a.seq - b.seq);
  for (const job of mine) await ctx.store.apply(id, "cb", job);
  await Promise.all(jobs.filter((j) => j.data.requestId === id).map((j) => j.remove()));
  return mine;
}

describe("POST .../{id}/cancel", () => {
  it.each(["WAIT", "READY", "BLOCKED", "HOLD"])("%s → CANCELLED at once, 200 with a link", async (state) => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    await setFields(id, "state", state);
    const res = await post(`${R}/${id}/cancel`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      requestId: Number(id),
      state: "CANCELLED",
      previousState: state,
      link: { rel: "self", href: `http://localhost${R}/${id}` },
    });
    const d = await details(id);
    expect(d).toMatchObject({ state: "CANCELLED", cause: "SCHEDULER_CANCEL", isCancellable: false });
    expect(d.processEndTime).toEqual(expect.any(String));
    expect(d.history[0]).toMatchObject({ outcome: "cancelRequested", from: state, to: "CANCELLED" });
    expect((await eventsOf(id)).at(-1)).toMatchObject({
      event: "REQUEST_CANCELLED",
      state: "CANCELLED",
      previousState: state,
    });
    expect(await ctx.redis.ttl(hkey(id))).toBeGreaterThan(0);
    // the job's handle is refused now
    await problem(await callback(id, requestHandle, "UPDATE"), 403, "ESS-40302");
  });

  it.each(["RUNNING", "COMPLETED"])(
    "%s → CANCELLING, cancellingSince recorded, REQUEST_CANCELLING published",
    async (state) => {
      const id = newRequestId();
      await register(id);
      if (state !== "RUNNING") await setFields(id, "state", state);
      const before = Date.now();
      const res = await post(`${R}/${id}/cancel`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ state: "CANCELLING", previousState: state, link: { rel: "self" } });
      const since = Number(await ctx.redis.hget(hkey(id), "cancellingSince"));
      expect(since).toBeGreaterThanOrEqual(before);
      const d = await details(id);
      expect(d).toMatchObject({ state: "CANCELLING", isForceCancelAllowed: true });
      expect(d.history[0]).toMatchObject({ outcome: "cancelRequested", from: state, to: "CANCELLING" });
      expect((await eventsOf(id)).at(-1)).toMatchObject({ event: "REQUEST_CANCELLING", previousState: state });
      expect(await ctx.redis.ttl(hkey(id))).toBe(-1);
    },
  );

  it("the job learns of the cancel on its next executionStatus 200 (X-ESS-Cancel-Requested), body empty", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const before = await callback(id, requestHandle, "UPDATE");
    expect(before.headers.get("x-ess-cancel-requested")).toBeNull();
    await post(`${R}/${id}/cancel`);
    const after = await callback(id, requestHandle, "UPDATE");
    expect(after.status).toBe(200);
    expect(after.headers.get("x-ess-cancel-requested")).toBe("true");
    expect(await after.text()).toBe("");
  });

  it("the job's CANCEL then ends a CANCELLING request in CANCELLED (the CANCELLING column)", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    await post(`${R}/${id}/cancel`);
    expect((await callback(id, requestHandle, "CANCEL")).status).toBe(200);
    await applyQueued(id);
    expect(await details(id)).toMatchObject({ state: "CANCELLED", cause: "PROCESS_CANCEL" });
  });

  it.each(["SUCCEEDED", "CANCELLED", "ERROR", "WARNING", "EXPIRED", "FINISHED"])(
    "400 Unsupported state for operation for a terminal request (%s)",
    async (state) => {
      const id = newRequestId();
      await register(id);
      await setFields(id, "state", state);
      const body = await problem(await post(`${R}/${id}/cancel`), 400, "ESS-40005");
      expect(body.title).toBe("Unsupported state for operation");
      expect(body.detail).toContain(state);
      expect(await ctx.redis.hget(hkey(id), "state")).toBe(state);
    },
  );

  it.each(["CANCELLING", "PAUSED", "ERROR_AUTO_RETRY", "ERROR_MANUAL_RECOVERY"])(
    "400 for a request that is %s (not cancellable), state unchanged",
    async (state) => {
      const id = newRequestId();
      await register(id);
      await setFields(id, "state", state);
      await problem(await post(`${R}/${id}/cancel`), 400, "ESS-40005");
      expect(await ctx.redis.hget(hkey(id), "state")).toBe(state);
    },
  );

  it("404 for an unknown request, 400 for a bad id, 405 for GET", async () => {
    await problem(await post(`${R}/${newRequestId()}/cancel`), 404, "ESS-40401");
    await problem(await post(`${R}/-3/cancel`), 400, "ESS-40001");
    const res = await ctx.app.request(`${R}/1/cancel`);
    await problem(res, 405, "ESS-40501");
    expect(res.headers.get("allow")).toBe("POST");
  });
});

describe("POST .../{id}/forceCancel", () => {
  async function cancelling(id: string) {
    const reg = await register(id);
    expect((await post(`${R}/${id}/cancel`)).status).toBe(200);
    return reg;
  }

  it("400 within the quiet period (30 min by default) since CANCELLING began", async () => {
    const id = newRequestId();
    await cancelling(id);
    const body = await problem(await post(`${R}/${id}/forceCancel`), 400, "ESS-40007");
    expect(body.detail).toMatch(/1800 s/);
    expect(await ctx.redis.hget(hkey(id), "state")).toBe("CANCELLING");
  });

  it("CANCELLING → CANCELLED once quiet for the configured period: 200 with link, event, history, handle refused", async () => {
    const id = newRequestId();
    const { requestHandle } = await cancelling(id);
    await setFields(id, "cancellingSince", Date.now() - 6 * 60000);
    const res = await post(`${R}/${id}/forceCancel`, undefined, quietApp);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      requestId: Number(id),
      state: "CANCELLED",
      previousState: "CANCELLING",
      link: { rel: "self" },
    });
    const d = await details(id);
    expect(d).toMatchObject({ state: "CANCELLED", cause: "SCHEDULER_CANCEL" });
    expect(d.history[0]).toMatchObject({ outcome: "forceCancelled", from: "CANCELLING", to: "CANCELLED" });
    expect((await eventsOf(id)).at(-1)).toMatchObject({ event: "REQUEST_CANCELLED", previousState: "CANCELLING" });
    await problem(await callback(id, requestHandle, "CANCEL"), 403, "ESS-40302");
  });

  it("a check-in restarts the quiet period", async () => {
    const id = newRequestId();
    const { requestHandle } = await cancelling(id);
    await setFields(id, "cancellingSince", Date.now() - 6 * 60000);
    const check = await post(`${R}/${id}/checkInCancelling`, {
      requestExecutionContext: formatExecutionContext(id, requestHandle),
    });
    expect(check.status).toBe(200);
    await applyQueued(id);
    await problem(await post(`${R}/${id}/forceCancel`, undefined, quietApp), 400, "ESS-40007");
    await setFields(id, "lastCheckInTime", Date.now() - 5 * 60000 - 1000);
    expect((await post(`${R}/${id}/forceCancel`, undefined, quietApp)).status).toBe(200);
  });

  it.each(["RUNNING", "WAIT", "SUCCEEDED", "CANCELLED"])("400 Unsupported state for a %s request", async (state) => {
    const id = newRequestId();
    await register(id);
    await setFields(id, "state", state);
    const body = await problem(await post(`${R}/${id}/forceCancel`, undefined, quietApp), 400, "ESS-40005");
    expect(body.title).toBe("Unsupported state for operation");
  });

  it("404 for an unknown request, 400 for a bad id, 405 for GET", async () => {
    await problem(await post(`${R}/${newRequestId()}/forceCancel`), 404, "ESS-40401");
    await problem(await post(`${R}/abc/forceCancel`), 400, "ESS-40001");
    await problem(await ctx.app.request(`${R}/1/forceCancel`), 405, "ESS-40501");
  });
});

describe("POST .../{id}/checkInCancelling", () => {
  const check = (id: string, requestExecutionContext: unknown, headers: Record<string, string> = {}) =>
    post(`${R}/${id}/checkInCancelling`, { requestExecutionContext }, ctx.app, headers);

  it("answers false while RUNNING and counts as a check-in (an UPDATE in sequence)", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const res = await check(id, formatExecutionContext(id, requestHandle));
    expect(res.status).toBe(200);
    expect(await res.json()).toBe(false);
    expect(res.headers.get("x-ess-cancel-requested")).toBeNull();
    const jobs = await applyQueued(id);
    expect(jobs).toMatchObject([{ status: "UPDATE", message: "checkInCancelling", seq: 1 }]);
    const d = await details(id);
    expect(d.lastCheckInTime).toEqual(expect.any(String));
    expect(d.state).toBe("RUNNING");
  });

  it("answers true (and sets the cancel header) while CANCELLING", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    await post(`${R}/${id}/cancel`);
    const res = await check(id, formatExecutionContext(id, requestHandle));
    expect(res.status).toBe(200);
    expect(await res.json()).toBe(true);
    expect(res.headers.get("x-ess-cancel-requested")).toBe("true");
  });

  it("403 for a wrong handle (never echoed), 403 naming the state when the request takes no callbacks", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const body = await problem(await check(id, formatExecutionContext(id, "secret-wrong")), 403, "ESS-40301");
    expect(body.detail).not.toContain("secret-wrong");
    await setFields(id, "state", "SUCCEEDED");
    const closed = await problem(await check(id, formatExecutionContext(id, requestHandle)), 403, "ESS-40302");
    expect(closed.detail).toContain("SUCCEEDED");
  });

  it("403 for the handle of an earlier execution after re-registration", async () => {
    const id = newRequestId();
    const first = await register(id);
    await register(id);
    await problem(await check(id, formatExecutionContext(id, first.requestHandle)), 403, "ESS-40301");
  });

  it("404 for an unknown request, 400 for a bad id, 405 for GET", async () => {
    const id = newRequestId();
    await problem(await check(id, formatExecutionContext(id, "h")), 404, "ESS-40401");
    await problem(await check("0", formatExecutionContext("1", "h")), 400, "ESS-40001");
    await problem(await ctx.app.request(`${R}/1/checkInCancelling`), 405, "ESS-40501");
  });

  it.each([
    ["not-a-context", /form 'ess1:<requestId>:<requestHandle>'/],
    ["ess2:1:h", /form/],
    ["ess1:abc:h", /request id/],
    ["ess1:5:", /handle .* empty/],
  ])("400 for the context %j", async (context, detail) => {
    const id = newRequestId();
    await register(id);
    const body = await problem(await check(id, context), 400, "ESS-40008");
    expect(body.detail).toMatch(detail);
  });

  it("400 when the context names another request", async () => {
    const id = newRequestId();
    const { requestHandle } = await register(id);
    const body = await problem(await check(id, formatExecutionContext("99", requestHandle)), 400, "ESS-40008");
    expect(body.detail).toMatch(/names request 99/);
  });

  it("400 for a bad body, 415 for a wrong media type", async () => {
    const id = newRequestId();
    await register(id);
    await problem(await post(`${R}/${id}/checkInCancelling`, "{oops"), 400, "ESS-40002");
    await problem(await post(`${R}/${id}/checkInCancelling`, {}), 400, "ESS-40003");
    await problem(await check(id, 42), 400, "ESS-40003");
    await problem(
      await post(`${R}/${id}/checkInCancelling`, { requestExecutionContext: "x", extra: 1 }),
      400,
      "ESS-40004",
    );
    const res = await ctx.app.request(`${R}/${id}/checkInCancelling`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "x",
    });
    await problem(res, 415, "ESS-41501");
  });
});

describe("POST/DELETE .../{id}/subscribe", () => {
  const sub = (id: string, method: "POST" | "DELETE", callbackUrl: unknown) =>
    ctx.app.request(`${R}/${id}/subscribe`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ callbackUrl }),
    });
  const subsKey = (id: string) => ctx.keys.subscriptions(ctx.keys.partition(id), id);

  it("adds and drops a callback URL, answering 200 with a link", async () => {
    const id = newRequestId();
    await register(id);
    const url = "https://hooks.example.com:9443/hook";
    const added = await sub(id, "POST", url);
    expect(added.status).toBe(200);
    expect(await added.json()).toMatchObject({
      callbackUrl: url,
      subscribed: true,
      added: true,
      link: { rel: "self" },
    });
    expect(Object.keys(await ctx.redis.hgetall(subsKey(id)))).toEqual([url]);
    expect(await (await sub(id, "POST", url)).json()).toMatchObject({ added: false });
    expect(await (await sub(id, "DELETE", url)).json()).toMatchObject({ subscribed: false, removed: true });
    expect(await ctx.redis.hgetall(subsKey(id))).toEqual({});
    expect(await (await sub(id, "DELETE", url)).json()).toMatchObject({ removed: false });
  });

  it.each([["ftp://x/y"], ["not a url"], ["http://user:pw@host/x"], [42]])("400 for callbackUrl %j", async (url) => {
    const id = newRequestId();
    await register(id);
    await problem(await sub(id, "POST", url), 400, "ESS-40003");
  });

  it.each([
    ["http://127.0.0.1:9/hook", "a loopback address (127.0.0.1)"],
    ["http://localhost:9/hook", "names a loopback host (localhost)"],
    ["http://[::1]/hook", "a loopback address (::1)"],
    ["http://0.0.0.0:9/hook", "an unspecified address (0.0.0.0)"],
    ["http://169.254.169.254/latest/meta-data/", "a cloud metadata address (169.254.169.254)"],
    ["http://metadata.google.internal/computeMetadata/v1/", "names a cloud metadata host (metadata.google.internal)"],
    ["http://[fd00:ec2::254]/", "a cloud metadata address (fd00:ec2::254)"],
    ["http://10.1.2.3/hook", "a private address (10.1.2.3)"],
    ["http://192.168.0.10/hook", "a private address (192.168.0.10)"],
    ["http://172.20.0.1/hook", "a private address (172.20.0.1)"],
    ["http://100.64.1.1/hook", "a private address (100.64.1.1)"],
    ["http://[fd12::1]/hook", "a private address (fd12::1)"],
    ["http://169.254.10.1/hook", "a link-local address (169.254.10.1)"],
    ["http://[fe80::1]/hook", "a link-local address (fe80::1)"],
    ["http://239.1.1.1/hook", "a multicast address (239.1.1.1)"],
    ["http://255.255.255.255/hook", "a broadcast address (255.255.255.255)"],
    ["http://2130706433/hook", "a loopback address (127.0.0.1)"],
    ["http://0x7f000001/hook", "a loopback address (127.0.0.1)"],
    ["http://127.1/hook", "a loopback address (127.0.0.1)"],
    ["http://[::ffff:127.0.0.1]/hook", "a loopback address (::ffff:7f00:1)"],
  ])("400 naming the rule for callbackUrl %s (webhook address policy)", async (url, rule) => {
    const id = newRequestId();
    await register(id);
    const body = await problem(await sub(id, "POST", url), 400, "ESS-40003");
    expect(body.detail).toContain(`callbackUrl ${rule.startsWith("names") ? "" : "resolves to "}${rule}`);
    expect(body.detail).toContain("refused by the webhook address policy");
    expect(await ctx.redis.hgetall(subsKey(id))).toEqual({});
  });

  it("a name is accepted at subscribe (it is checked on the address the worker connects to)", async () => {
    const id = newRequestId();
    await register(id);
    expect((await sub(id, "POST", "http://rebind.example.net:8080/hook")).status).toBe(200);
  });

  it("the allowlist opens what it names; a subscription refused before can still be dropped", async () => {
    const open = createApp({
      ...ctx.deps,
      scheduler: {
        forceCancelQuietMs: 0,
        ssePollMs: 50,
        webhookPolicy: new WebhookAddressPolicy("127.0.0.1,localhost"),
      },
    });
    const id = newRequestId();
    await register(id);
    const at = (app: typeof open, method: "POST" | "DELETE", url: string) =>
      app.request(`${R}/${id}/subscribe`, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ callbackUrl: url }),
      });
    expect((await at(open, "POST", "http://127.0.0.1:9/hook")).status).toBe(200);
    expect((await at(open, "POST", "http://localhost:9/hook")).status).toBe(200);
    await problem(await at(open, "POST", "http://10.0.0.1/hook"), 400, "ESS-40003");
    // under the default policy the same URL is refused, but DELETE still removes it
    await problem(await at(ctx.app, "POST", "http://127.0.0.1:9/hook"), 400, "ESS-40003");
    expect(await (await at(ctx.app, "DELETE", "http://127.0.0.1:9/hook")).json()).toMatchObject({ removed: true });
  });

  it("answers a generated secret once; takes the caller's; 400 for a malformed one; 503 without the key-encryption key", async () => {
    const id = newRequestId();
    await register(id);
    const url = "https://hooks.example.com/secret";
    const post = (body: unknown, app = ctx.app) =>
      app.request(`${R}/${id}/subscribe`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const first = (await (await post({ callbackUrl: url })).json()) as { secret: string; subscriptionId: string };
    expect(first.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(first.subscriptionId).toMatch(/^[0-9a-f]{16}$/);
    expect(await (await post({ callbackUrl: url })).json()).not.toHaveProperty("secret");
    const mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    expect(await (await post({ callbackUrl: `${url}/2`, secret: mine })).json()).toMatchObject({ secret: mine });
    for (const secret of ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ=", "whsec_***"]) {
      const body = await problem(await post({ callbackUrl: `${url}/3`, secret }), 400, "ESS-40003");
      expect(body.detail).toContain("secret must be 'whsec_'");
    }
    const { webhooks: _sealed, ...withoutKey } = ctx.deps;
    const keyless = createApp(withoutKey);
    const refused = await problem(await post({ callbackUrl: `${url}/4` }, keyless), 503, "ESS-50301");
    expect(refused.detail).toContain("WEBHOOK_SECRET");
  });

  it("404 for an unknown request, 405 for GET", async () => {
    await problem(await sub(newRequestId(), "POST", "http://hooks.example.com/x"), 404, "ESS-40401");
    await problem(await sub(newRequestId(), "DELETE", "http://hooks.example.com/x"), 404, "ESS-40401");
    await problem(await ctx.app.request(`${R}/1/subscribe`), 405, "ESS-40501");
  });
});

describe("re-dispatch through registration", () => {
  it("the 201 carries the requestExecutionContext the job passes to checkInCancelling", async () => {
    const id = newRequestId();
    const reg = (await register(id)) as { requestHandle: string; requestExecutionContext?: string };
    expect(reg.requestExecutionContext).toBe(`ess1:${id}:${reg.requestHandle}`);
    const res = await post(`${R}/${id}/checkInCancelling`, { requestExecutionContext: reg.requestExecutionContext });
    expect(await res.json()).toBe(false);
  });

  it("a retry from ERROR_AUTO_RETRY keeps retriedCount, mints a new handle, refuses the old one", async () => {
    const id = newRequestId();
    const first = await register(id, { maxRetries: 3 });
    await setFields(id, "state", "ERROR_AUTO_RETRY", "retriedCount", 2);
    const second = await register(id);
    expect(second.execution).toBe(2);
    expect(second.requestHandle).not.toBe(first.requestHandle);
    expect(await details(id)).toMatchObject({ state: "RUNNING", retriedCount: 2, maxRetries: 3 });
    await problem(await callback(id, first.requestHandle, "UPDATE"), 403, "ESS-40301");
    expect((await callback(id, second.requestHandle, "UPDATE")).status).toBe(200);
  });

  it("a resume from PAUSED returns pausedState and refuses the old handle", async () => {
    const id = newRequestId();
    const first = await register(id);
    await setFields(id, "state", "PAUSED", "pausedState", "cursor=9");
    const second = await register(id, { resumed: true });
    expect(second).toMatchObject({ execution: 2, pausedState: "cursor=9" });
    await problem(await callback(id, first.requestHandle, "UPDATE"), 403, "ESS-40301");
  });

  it("operator recovery from ERROR_MANUAL_RECOVERY re-runs under a new handle", async () => {
    const id = newRequestId();
    const first = await register(id);
    await setFields(id, "state", "ERROR_MANUAL_RECOVERY");
    const second = await register(id);
    expect(second.execution).toBe(2);
    expect(await details(id)).toMatchObject({ state: "RUNNING" });
    await problem(await callback(id, first.requestHandle, "SUCCESS"), 403, "ESS-40301");
    expect((await callback(id, second.requestHandle, "SUCCESS")).status).toBe(200);
  });

  it("re-registration clears the timed-out mark and the cancel of the earlier execution", async () => {
    const id = newRequestId();
    await register(id);
    await post(`${R}/${id}/cancel`);
    await setFields(id, "isTimedOut", "true");
    await register(id);
    expect(await details(id)).toMatchObject({ state: "RUNNING", isTimedOut: false });
    expect(await ctx.redis.hget(hkey(id), "cancellingSince")).toBeNull();
  });
});
