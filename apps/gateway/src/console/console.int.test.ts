import { simpleExceptionDetailSchema } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";
import { SchedulerStore, WEBHOOK_QUEUE } from "@ess/store";
import { failedJob } from "@ess/testing";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { operatorActions } from "../operator/actions.js";
import { useGatewayTestContext } from "../test-context.js";
import { OverviewSnapshots } from "./snapshot.js";

const USERS = {
  viewer: { user: "vera", password: "viewer-pass-1", role: "viewer" },
  operator: { user: "otto", password: "operator-pass-1", role: "operator" },
  admin: { user: "ada", password: "admin-pass-1", role: "admin" },
} as const;
type Who = keyof typeof USERS;

const ctx = await useGatewayTestContext({
  partitions: 4,
  env: {
    ALLOW_ANONYMOUS: "false",
    AUTH_USERS: Object.values(USERS)
      .map((u) => `${u.user}:${u.role}:${u.password}`)
      .join(","),
  },
});

const auth = (who: Who) => `Basic ${Buffer.from(`${USERS[who].user}:${USERS[who].password}`).toString("base64")}`;
/** As a browser asks: refusals come back as pages. */
const BROWSER = { accept: "text/html,application/xhtml+xml,*/*;q=0.8" };
const get = (who: Who, path: string) =>
  ctx.adminApp.request(path, { headers: { authorization: auth(who), ...BROWSER } });
const html = async (who: Who, path: string, status = 200) => {
  const res = await get(who, path);
  const text = await res.text();
  expect(res.status, `${path}: ${text.slice(0, 300)}`).toBe(status);
  return text;
};
/** The CSRF token a page carries (htmx's header, also in every form). */
const tokenOf = (page: string) => /X-CSRF-Token&quot;:&quot;([^&]+)&quot;/.exec(page)?.[1] ?? "";
const post = (who: Who, path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
  ctx.adminApp.request(path, {
    method: "POST",
    headers: {
      authorization: auth(who),
      ...BROWSER,
      "content-type": "application/x-www-form-urlencoded",
      origin: "http://localhost",
      "sec-fetch-site": "same-origin",
      ...headers,
    },
    body: new URLSearchParams(form).toString(),
  });

const JOB = `JobDefinition://console/${Date.now()}`;

/** A registered request, driven by callbacks (admit + apply, as the worker would) into a state. */
async function request(meta: Record<string, unknown>, ...statuses: CallbackStatus[]): Promise<string> {
  const id = newRequestId();
  await ctx.store.register(id, "h", { metadata: { jobDefinitionId: JOB, ...meta } });
  for (const status of statuses) {
    const a = await ctx.store.admit(id, "h", status);
    if (a.kind !== "admitted") throw new Error("not admitted");
    await ctx.store.apply(id, "cb", { v: 1, requestId: id, seq: a.seq, execution: 1, status, acceptedAt: Date.now() });
  }
  return id;
}

describe("operator console: pages", () => {
  it("serves every page with a strict CSP, its own nonce, and nothing inline", async () => {
    const id = await request({ application: "Payroll" });
    const nonces = new Set<string>();
    for (const path of [
      "/console",
      "/console/requests",
      `/console/requests/${id}`,
      "/console/dead-letters",
      "/console/audit",
      "/console/bulk",
    ]) {
      const res = await get("admin", path);
      expect(res.status, path).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain("unsafe-inline");
      const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
      expect(nonce).toBeTruthy();
      nonces.add(nonce as string);
      const page = await res.text();
      expect(page).toMatch(/^<!DOCTYPE html><html lang="en">/i);
      // no inline script or style: every <script> has a src, no <style>, no style attribute
      expect(page).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(page).not.toMatch(/<style|\sstyle=/);
      expect(page).not.toMatch(/https?:\/\/(?!localhost)/);
      expect(page).toMatch(/<main id="main">/);
    }
    expect(nonces.size).toBe(6);
  });

  it("serves htmx and the style sheet from the gateway with a one-year immutable cache", async () => {
    const page = await html("viewer", "/console");
    const assets = [...page.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
    expect(assets).toHaveLength(2);
    for (const path of assets) {
      const res = await get("viewer", path);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(res.headers.get("content-type")).toMatch(/^text\/(javascript|css)/);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    expect((await get("viewer", "/console/assets/htmx.0000000000.js")).status).toBe(404);
    expect((await get("viewer", "/console/assets/__proto__")).status).toBe(404);
  });

  it("answers a client that does not read HTML with SimpleExceptionDetails, as the rest of the listener", async () => {
    const headers = { authorization: auth("viewer") };
    for (const [path, status] of [
      ["/console/requests?state=NOPE", 400],
      ["/console/requests/999999999999", 404],
      ["/console/dead-letters?partition=99", 400],
      ["/console/bulk/nope", 404],
    ] as const) {
      const res = await ctx.adminApp.request(path, { headers });
      expect(res.status, path).toBe(status);
      expect(res.headers.get("content-type")).toMatch(/json/);
      expect(simpleExceptionDetailSchema.safeParse(await res.json()).success).toBe(true);
    }
  });

  it("refuses the console without credentials", async () => {
    const res = await ctx.adminApp.request("/console");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/Basic/);
  });

  it("overview: requests per state over every partition, dead letters, partition strip", async () => {
    const before = await html("viewer", "/console/overview/live");
    const count = (page: string, state: string) =>
      Number(new RegExp(`data-state="${state}">([0-9,]+)<`).exec(page)?.[1]?.replaceAll(",", "") ?? "0");
    await request({}, "SUSPEND");
    await request({}, "SUSPEND");
    await request({}, "PAUSE");
    const dl = await request({});
    await ctx.deadLetters.record(ctx.keys.partition(dl), failedJob(dl, 1, "ERROR"));
    // the page's snapshot is shared for 2 s: a fresh snapshot reader shows the new numbers at once
    const snap = await new OverviewSnapshots({ store: ctx.store, deadLetters: ctx.deadLetters }, 60000).get();
    expect(snap.states.ERROR_MANUAL_RECOVERY).toBe(count(before, "ERROR_MANUAL_RECOVERY") + 2);
    expect(snap.states.PAUSED).toBe(count(before, "PAUSED") + 1);
    expect(snap.deadLetters).toBeGreaterThanOrEqual(1);
    expect(snap.partitions).toHaveLength(4);
    const page = await html("viewer", "/console");
    expect(page).toContain('hx-get="/console/overview/live"');
    expect(page).toMatch(/p3<\/a>: (ok|lagging|failing)/);
    expect(page).toMatch(/id="readiness">ready</);
  });

  it("overview: backlog, lag and webhook deliveries retrying, per partition and in total", async () => {
    const id = newRequestId();
    const p = ctx.keys.partition(id);
    const hooks = ctx.queues.queue(p, WEBHOOK_QUEUE);
    const callbacks = ctx.queues.queue(p);
    const retrying = await hooks.add("deliver", { requestId: id }, { delay: 600000 });
    const waiting = await callbacks.add(
      "cb",
      { requestId: id },
      { jobId: `console-${id}`, timestamp: Date.now() - 90000 },
    );
    try {
      const snap = await new OverviewSnapshots(
        { store: ctx.store, deadLetters: ctx.deadLetters, catalog: ctx.deps.ops?.catalog },
        60000,
      ).get();
      const row = snap.partitions[p];
      expect(row?.webhookRetrying).toBe(1);
      expect(row?.backlog).toBeGreaterThanOrEqual(1);
      expect(row?.lagSeconds).toBeGreaterThanOrEqual(90);
      expect(row?.health).toBe("lagging");
      expect(snap.totals.webhookRetrying).toBe(1);
      expect(snap.totals.lagSeconds).toBeGreaterThanOrEqual(90);
    } finally {
      await retrying.remove();
      await waiting.remove();
    }
  });

  it("overview: concurrent viewers share one Redis read per interval", async () => {
    const snaps = new OverviewSnapshots({ store: ctx.store, deadLetters: ctx.deadLetters }, 60000);
    const all = await Promise.all(Array.from({ length: 20 }, () => snaps.get()));
    expect(snaps.refreshes).toBe(1);
    expect(new Set(all).size).toBe(1);
    await snaps.get();
    expect(snaps.refreshes).toBe(1);
  });

  it("requests: filters in the URL, presets, cursor paging, bad input as 400", async () => {
    const app = `App-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await request({ application: app, submitter: "carol" }, "SUSPEND"));
    const other = await request({ application: app, submitter: "dave" });
    const page = await html(
      "viewer",
      `/console/requests?application=${app}&submitter=carol&state=ERROR_MANUAL_RECOVERY`,
    );
    for (const id of ids) expect(page).toContain(`href="/console/requests/${id}"`);
    expect(page).not.toContain(`href="/console/requests/${other}"`);
    // the filters are the form's values again (bookmarkable) and the API's q is shown
    expect(page).toContain(`value="${app}"`);
    expect(page).toMatch(/value="ERROR_MANUAL_RECOVERY" checked/);
    expect(page).toContain("q=state=ERROR_MANUAL_RECOVERY;application=");
    const needs = await html("viewer", `/console/requests?preset=needs-action&application=${app}`);
    for (const id of ids) expect(needs).toContain(`/console/requests/${id}"`);
    // partition narrowing
    const p = ctx.keys.partition(ids[0] as string);
    const onP = await html("viewer", `/console/requests?application=${app}&partition=${p}`);
    for (const id of [...ids, other]) {
      expect(onP.includes(`/console/requests/${id}"`)).toBe(ctx.keys.partition(id) === p);
    }
    // one page at a time with the index's cursor, until the end
    const seen: string[] = [];
    let url = `/console/requests?application=${app}`;
    for (let i = 0; i < 10; i++) {
      const body = await html("viewer", url);
      seen.push(...[...body.matchAll(/<td><a href="\/console\/requests\/(\d+)">/g)].map((m) => m[1] as string));
      const next = /<a rel="next" href="([^"]+)"/.exec(body)?.[1];
      if (!next) break;
      url = next.replaceAll("&amp;", "&");
    }
    expect(seen.sort()).toEqual([...ids, other].sort());
    // a single id
    const one = await html("viewer", `/console/requests?id=${other}`);
    expect(one).toContain(`/console/requests/${other}"`);
    for (const bad of ["state=NOPE", "partition=9", "from=yesterday", "preset=all", "id=abc", "cursor=zzz"]) {
      const body = await html("viewer", `/console/requests?${bad}`, 400);
      expect(body).toContain('role="alert"');
    }
  });

  it("requests: the timed-out, stuck-in-CANCELLING and with-dead-letters presets", async () => {
    const withDl = await request({});
    await ctx.deadLetters.record(ctx.keys.partition(withDl), failedJob(withDl, 1, "ERROR"));
    const dlPage = await html("viewer", "/console/requests?preset=dead-letters");
    expect(dlPage).toContain(`/console/requests/${withDl}"`);
    const cancelling = await request({});
    await new SchedulerStore(ctx.store).cancel(cancelling, Date.now() - 30 * 60000);
    const stuck = await html("viewer", "/console/requests?preset=stuck-cancelling&minutes=10");
    expect(stuck).toContain(`/console/requests/${cancelling}"`);
    const notYet = await html("viewer", "/console/requests?preset=stuck-cancelling&minutes=60");
    expect(notYet).not.toContain(`/console/requests/${cancelling}"`);
    expect(await html("viewer", "/console/requests?preset=timed-out")).toContain("q=isTimedOut=true");
  });

  it("request detail: a timeline of transitions, callbacks with their outcome and dead letters", async () => {
    const id = await request({ application: "Timeline" }, "UPDATE", "SUSPEND");
    await ctx.deadLetters.record(ctx.keys.partition(id), failedJob(id, 3, "ERROR"));
    const page = await html("viewer", `/console/requests/${id}`);
    expect(page).toContain('data-kind="callback" data-outcome="applied"');
    expect(page).toContain('data-kind="transition" data-outcome="registered"');
    expect(page).toContain('data-kind="dead-letter"');
    expect(page).toContain("RUNNING → ERROR_MANUAL_RECOVERY");
    await html("viewer", "/console/requests/999999999999", 404);
    await html("viewer", "/console/requests/abc", 404);
  });
});

describe("operator console: request actions by state", () => {
  it("offers forceCancel once the request has been quiet long enough, and says when before", async () => {
    const scheduler = new SchedulerStore(ctx.store);
    const fresh = await request({});
    await scheduler.cancel(fresh, Date.now());
    const early = await html("operator", `/console/requests/${fresh}`);
    expect(early).not.toContain("/actions/forceCancel");
    expect(early).toContain('id="force-cancel-from"');
    const quiet = await request({});
    await scheduler.cancel(quiet, Date.now() - 31 * 60000);
    const page = await html("operator", `/console/requests/${quiet}`);
    expect(page).toContain(`action="/console/requests/${quiet}/actions/forceCancel"`);
    const res = await post("operator", `/console/requests/${quiet}/actions/forceCancel`, {
      _csrf: tokenOf(page),
      reason: "job host is gone",
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/Force cancel: CANCELLING → CANCELLED/);
    expect(await ctx.store.state(quiet)).toBe("CANCELLED");
  });

  it("replays a request's dead letters, and re-arms one that waits for an operator", async () => {
    const id = await request({}, "SUSPEND");
    const p = ctx.keys.partition(id);
    await ctx.deadLetters.record(p, failedJob(id, 5, "UPDATE"));
    await ctx.deadLetters.record(p, failedJob(id, 6, "UPDATE"));
    const page = await html("operator", `/console/requests/${id}`);
    expect(page).toContain("Replay 2 dead letters");
    const token = tokenOf(page);
    const replay = await post("operator", `/console/requests/${id}/actions/replayDeadLetters`, {
      _csrf: token,
      reason: "downstream is back",
    });
    expect(replay.status).toBe(200);
    expect(await replay.text()).toMatch(/2 replayed/);
    expect(await ctx.deadLetters.countMatching({ requestId: id })).toBe(0);
    const rearm = await post("operator", `/console/requests/${id}/actions/rearm`, { _csrf: token, reason: "retry" });
    const text = await rearm.text();
    expect(rearm.status).toBe(200);
    expect(text).toMatch(/Re-arm: ERROR_MANUAL_RECOVERY → RUNNING; the job&#39;s new execution context is ess1:/);
    expect(await ctx.store.state(id)).toBe("RUNNING");
  });

  it("shows the request's webhook deliveries in its timeline", async () => {
    const id = await request({});
    const webhooks = ctx.deps.webhooks;
    if (!webhooks) throw new Error("the test gateway has a webhook store");
    const { subscription } = await webhooks.subscribe(id, "https://hooks.example.com/ess");
    await webhooks.record(id, subscription.id, {
      at: Date.now(),
      eventId: "1-0/1",
      seq: 1,
      type: "REQUEST_RUNNING",
      kind: "ordered",
      attempt: 2,
      outcome: "failed",
      status: 503,
      latencyMs: 12,
      error: "Service Unavailable",
    });
    const page = await html("viewer", `/console/requests/${id}`);
    expect(page).toContain('data-kind="webhook" data-outcome="failed"');
    expect(page).toContain("https://hooks.example.com/ess: failed (HTTP 503, Service Unavailable; attempt 2)");
  });
});

describe("operator console: audit log and bulk aborts", () => {
  it("pages the audit log newest first, filtered by actor, with the log's cursor", async () => {
    const log = operatorActions(ctx.deps).audit;
    for (let i = 0; i < 55; i++) {
      await log.record({
        actor: "pager",
        role: "operator",
        action: "request.cancel",
        target: `request/${9000 + i}`,
        reason: `reason ${i}`,
        outcome: "succeeded",
      });
    }
    const seen: string[] = [];
    let url = "/console/audit?actor=pager";
    for (let i = 0; i < 5; i++) {
      const page = await html("viewer", url);
      seen.push(...[...page.matchAll(/<td>(reason \d+)<\/td>/g)].map((m) => m[1] as string));
      const next = /<a rel="next" href="([^"]+)"/.exec(page)?.[1];
      if (!next) break;
      url = next.replaceAll("&amp;", "&");
    }
    expect(seen).toEqual(Array.from({ length: 55 }, (_, i) => `reason ${54 - i}`));
  });

  it("discards an estimated bulk action, and stops a running one", async () => {
    const id = await request({});
    await ctx.deadLetters.record(ctx.keys.partition(id), failedJob(id, 1, "ERROR"));
    const page = await html("admin", `/console/dead-letters?requestId=${id}`);
    const token = tokenOf(page);
    const create = async () => {
      const res = await post("admin", "/console/bulk/new", { _csrf: token, action: "purge", requestId: id });
      expect(res.status).toBe(303);
      return res.headers.get("location") ?? "";
    };
    const first = await create();
    expect((await post("admin", `${first}/abort`, { _csrf: token, reason: "wrong filter" })).status).toBe(303);
    expect(await html("viewer", first)).toMatch(/id="bulk-state">aborted</);
    const second = await create();
    expect((await post("admin", `${second}/confirm`, { _csrf: token, count: "1", reason: "go" })).status).toBe(303);
    // no worker runs in this suite: the action stays running until the abort
    const running = await html("admin", second);
    expect(running).toContain(`action="${second}/abort"`);
    expect((await post("admin", `${second}/abort`, { _csrf: token, reason: "stop" })).status).toBe(303);
    expect(await html("viewer", second)).toMatch(/id="bulk-state">(aborting|aborted)</);
    expect((await post("admin", `${second}/bogus`, { _csrf: token, reason: "x" })).status).toBe(404);
  });
});

describe("operator console: roles and CSRF", () => {
  it("a viewer sees no action controls, and the server refuses its POSTs", async () => {
    const id = await request({}, "SUSPEND");
    await ctx.deadLetters.record(ctx.keys.partition(id), failedJob(id, 2, "ERROR"));
    const page = await html("viewer", `/console/requests/${id}`);
    expect(page).not.toMatch(/<form method="post"/);
    expect(page).toContain("Your role can read but not act.");
    const dl = await html("viewer", `/console/dead-letters?requestId=${id}`);
    expect(dl).not.toMatch(/<form method="post"/);
    const res = await post("viewer", `/console/requests/${id}/actions/cancel`, { _csrf: tokenOf(page), reason: "try" });
    expect(res.status).toBe(403);
    expect(await ctx.store.state(id)).toBe("ERROR_MANUAL_RECOVERY");
  });

  it("an operator gets the actions valid now; a cancel needs a reason and lands in history and audit", async () => {
    const suspended = await request({}, "SUSPEND");
    const recovery = await html("operator", `/console/requests/${suspended}`);
    expect(recovery).toContain(`action="/console/requests/${suspended}/actions/rearm"`);
    expect(recovery).not.toContain("/actions/cancel");
    const id = await request({});
    const page = await html("operator", `/console/requests/${id}`);
    expect(page).toContain(`action="/console/requests/${id}/actions/cancel"`);
    expect(page).not.toContain("/actions/rearm");
    expect(page).not.toContain("/actions/forceCancel");
    expect(page).not.toContain("/actions/replayDeadLetters");
    const token = tokenOf(page);
    const noReason = await post("operator", `/console/requests/${id}/actions/cancel`, { _csrf: token, reason: " " });
    expect(noReason.status).toBe(400);
    expect(await noReason.text()).toMatch(/reason is required/);
    const ok = await post("operator", `/console/requests/${id}/actions/cancel`, { _csrf: token, reason: "stuck job" });
    const after = await ok.text();
    expect(ok.status, after.slice(0, 400)).toBe(200);
    expect(after).toMatch(/Cancel: RUNNING → CANCELLING/);
    expect(after).toMatch(/data-kind="operator"[^>]*>.*by <strong>otto<\/strong>/s);
    expect(await ctx.store.state(id)).toBe("CANCELLING");
    const audit = await html("viewer", `/console/audit?target=request/${id}`);
    expect(audit).toContain("request.cancel");
    expect(audit).toContain("stuck job");
    expect(audit).toContain("otto");
    // the same action again is not valid any more: 409, recorded as refused
    const again = await post("operator", `/console/requests/${id}/actions/cancel`, { _csrf: token, reason: "again" });
    expect(again.status).toBe(409);
  });

  it("refuses a POST without the token, with another credential's, or from another origin", async () => {
    const id = await request({});
    const opToken = tokenOf(await html("operator", `/console/requests/${id}`));
    const adminToken = tokenOf(await html("admin", `/console/requests/${id}`));
    expect(opToken).not.toBe(adminToken);
    const path = `/console/requests/${id}/actions/cancel`;
    const cases: [string, Response | Promise<Response>][] = [
      ["no token", post("operator", path, { reason: "r1" })],
      ["another credential's token", post("operator", path, { _csrf: adminToken, reason: "r2" })],
      ["forged token", post("operator", path, { _csrf: "x".repeat(43), reason: "r3" })],
      ["cross-site", post("operator", path, { _csrf: opToken, reason: "r4" }, { "sec-fetch-site": "cross-site" })],
      ["other origin", post("operator", path, { _csrf: opToken, reason: "r5" }, { origin: "https://evil.example" })],
      ["null origin", post("operator", path, { _csrf: opToken, reason: "r6" }, { origin: "null" })],
    ];
    for (const [name, res] of cases) expect((await res).status, name).toBe(403);
    const json = await ctx.adminApp.request(path, {
      method: "POST",
      headers: { authorization: auth("operator"), "content-type": "application/json" },
      body: JSON.stringify({ _csrf: opToken, reason: "json" }),
    });
    expect(json.status).toBe(415);
    const huge = await post("operator", path, { _csrf: opToken, reason: "x".repeat(20000) });
    expect(huge.status).toBe(413);
    expect(await ctx.store.state(id)).toBe("RUNNING");
    // the token also works as htmx's header
    const viaHeader = await post("operator", path, { reason: "header token" }, { "x-csrf-token": opToken });
    expect(viaHeader.status).toBe(200);
    expect(await ctx.store.state(id)).toBe("CANCELLING");
  });

  it("dead letters: an operator replays one but may not purge; an admin purges and runs bulk actions", async () => {
    const id = await request({});
    const p = ctx.keys.partition(id);
    const recordOne = async (job: ReturnType<typeof failedJob>) => {
      const [entry] = await ctx.deadLetters.record(p, job);
      if (!entry) throw new Error("no dead letter recorded");
      return entry;
    };
    const a = await recordOne(failedJob(id, 1, "ERROR"));
    const b = await recordOne(failedJob(id, 2, "UPDATE"));
    const opPage = await html("operator", `/console/dead-letters?requestId=${id}`);
    expect(opPage).toContain(`/console/dead-letters/${encodeURIComponent(a.id)}/replay`);
    expect(opPage).not.toContain("/purge");
    expect(opPage).not.toContain('action="/console/bulk/new"');
    const token = tokenOf(opPage);
    const replayed = await post("operator", `/console/dead-letters/${a.id}/replay`, { _csrf: token, reason: "fixed" });
    expect(replayed.status).toBe(200);
    expect(await replayed.text()).toContain(`Dead letter ${a.id} replayed`);
    const purge = await post("operator", `/console/dead-letters/${b.id}/purge`, { _csrf: token, reason: "nope" });
    expect(purge.status).toBe(403);
    expect(await ctx.deadLetters.get(b.id)).not.toBeNull();
    const adminPage = await html("admin", `/console/dead-letters?requestId=${id}`);
    expect(adminPage).toContain(`/console/dead-letters/${encodeURIComponent(b.id)}/purge`);
    expect(adminPage).toContain('action="/console/bulk/new"');
    const purged = await post("admin", `/console/dead-letters/${b.id}/purge`, {
      _csrf: tokenOf(adminPage),
      reason: "junk",
    });
    expect(purged.status).toBe(200);
    expect(await ctx.deadLetters.get(b.id)).toBeNull();
  });

  it("bulk: the server snapshots the filter; the confirmation carries only the id, the typed count and the reason", async () => {
    const id = await request({});
    const p = ctx.keys.partition(id);
    for (let i = 1; i <= 3; i++) await ctx.deadLetters.record(p, failedJob(id, i, "ERROR"));
    const page = await html("admin", `/console/dead-letters?requestId=${id}`);
    expect(page).toContain('<span id="matching-count">3</span>');
    const token = tokenOf(page);
    const opTry = await post("operator", "/console/bulk/new", { _csrf: token, action: "replay", requestId: id });
    expect(opTry.status).toBe(403);
    const created = await post("admin", "/console/bulk/new", { _csrf: token, action: "replay", requestId: id });
    expect(created.status).toBe(303);
    const at = created.headers.get("location") ?? "";
    expect(at).toMatch(/^\/console\/bulk\/[\w-]+$/);
    const confirm = await html("admin", at);
    expect(confirm).toContain('<strong id="bulk-estimate">3</strong>');
    expect(confirm).toContain(`request ${id}`);
    // the confirmation form has no filter field: only the token, the count and the reason
    const form = /<form method="post" action="[^"]+\/confirm"[\s\S]*?<\/form>/.exec(confirm)?.[0] ?? "";
    expect([...form.matchAll(/name="([^"]+)"/g)].map((m) => m[1]).sort()).toEqual(["_csrf", "count", "reason"]);
    // a dead letter recorded after the estimate is not covered
    await ctx.deadLetters.record(p, failedJob(id, 4, "ERROR"), Date.now() + 60000);
    const wrong = await post("admin", `${at}/confirm`, { _csrf: token, count: "4", reason: "all of them" });
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toContain('role="alert"');
    const ok = await post("admin", `${at}/confirm`, { _csrf: token, count: "3", reason: "all of them" });
    expect(ok.status).toBe(303);
    const running = await html("viewer", at);
    expect(running).toMatch(/Step 3 of 4|Step 4 of 4/);
    expect(running).not.toMatch(/<form method="post"/);
    const audit = await html("viewer", "/console/audit?action=bulk.confirm");
    expect(audit).toContain("all of them");
    expect(audit).toContain(`request ${id}`);
    expect(await html("viewer", "/console/bulk")).toContain(at);
  });
});
