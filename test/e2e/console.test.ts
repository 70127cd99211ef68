import "@ess/testing/provided";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { CallbackQueues, DeadLetters, Keys } from "@ess/store";
import { eventually, failedJob, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { dropPrefix, testRedis, testRedisEnv, uniquePrefix } from "@ess/testing/context";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The operator console in Debian's Chromium against a real gateway and worker on the suite's Redis:
// overview counts, filter → detail, cancel with a reason, a bulk replay with confirmation, progress and
// results, an axe check of every page, and screenshots: under test-artifacts/console, or with
// UPDATE_SCREENSHOTS=1 into docs/console/, the ones the README shows.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = process.env.UPDATE_SCREENSHOTS ? join(ROOT, "docs", "console") : join(ROOT, "test-artifacts", "console");
const PARTITIONS = 4;
const USERS = {
  admin: { user: "ada", password: "console-admin-1", role: "admin" },
  operator: { user: "otto", password: "console-operator-1", role: "operator" },
  viewer: { user: "vera", password: "console-viewer-1", role: "viewer" },
} as const;
type Who = keyof typeof USERS;

// CI must run it (.ci/run installs Chromium); on a developer's machine without Chromium it is skipped, saying so
const MISSING = !existsSync(CHROMIUM) && !process.env.CI;
if (MISSING) console.warn(`console browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);

const env = { REDIS_URL: "", KEY_PREFIX: uniquePrefix(), PARTITIONS: String(PARTITIONS) };
const redis = testRedis("tool");
const keys = new Keys(env.KEY_PREFIX, PARTITIONS);
const queues = new CallbackQueues(redis, keys, { attempts: 2, backoffMs: 10 });
const dlq = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let gateway: RunningProcess;
let worker: RunningProcess;
let browser: Browser;

const basic = (who: Who) => `Basic ${Buffer.from(`${USERS[who].user}:${USERS[who].password}`).toString("base64")}`;

/** A call of the gateway's API as the scheduler and the job would make it (with the admin credential). */
async function api(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: basic("admin") },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}
async function state(id: string): Promise<string> {
  const res = await fetch(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}?fields=state`, {
    headers: { authorization: basic("admin") },
  });
  return ((await res.json()) as { state: string }).state;
}

/** Registers a request with metadata and, optionally, posts one callback status (the worker applies it). */
async function seedRequest(id: string, meta: Record<string, unknown>, status?: string): Promise<void> {
  const reg = await api(`/gateway/v1/requests/${id}/executions`, meta);
  if (status) {
    await api(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, { requestHandle: reg.requestHandle, status });
  }
}

beforeAll(async () => {
  if (MISSING) return;
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  Object.assign(env, testRedisEnv());
  const auth = {
    ALLOW_ANONYMOUS: "false",
    AUTH_USERS: Object.values(USERS)
      .map((u) => `${u.user}:${u.role}:${u.password}`)
      .join(","),
    // a bulk action at 5 dead letters a second: its progress is visible for a few seconds
    DLQ_REPLAY_RATE: "5",
  };
  [gateway, worker] = await Promise.all([
    startApp("gateway", { ...env, ...auth }),
    startApp("worker", { ...env, ...auth }),
  ]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([gateway?.stop(), worker?.stop()]);
  await queues.close();
  await dropPrefix(redis, env.KEY_PREFIX);
  await redis.quit();
});

/** A page signed in as `who`, failing the test on any CSP violation or request off the gateway. */
async function open(who: Who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.setExtraHTTPHeaders({ authorization: basic(who) });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text()))
      problems.push(`${page.url()}: ${m.text()} ${JSON.stringify(m.location())}`);
  });
  page.on("pageerror", (e) => problems.push(e.message));
  page.on("request", (r) => {
    if (!r.url().startsWith(gateway.adminUrl)) problems.push(`request off the gateway: ${r.url()}`);
  });
  return { context, page, problems };
}

/**
 * axe-core on the page as it is: no serious or critical violation. The polled parts are frozen first
 * (each replaced by a copy htmx does not poll), so that no swap lands in the middle of the check;
 * reload the page to have them live again.
 */
async function axe(page: Page, name: string): Promise<void> {
  await page.evaluate('for (const e of document.querySelectorAll("[hx-trigger]")) e.replaceWith(e.cloneNode(true))');
  await page.evaluate(AXE);
  const result = (await page.evaluate(() =>
    (globalThis as unknown as { axe: { run: (o: unknown) => Promise<unknown> } }).axe.run({
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    }),
  )) as { violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] };
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    `axe on ${name}`,
  ).toEqual([]);
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

describe.skipIf(MISSING)("operator console in a browser", () => {
  const APP = "Payroll";
  const recovery = ["91001", "91002", "91003"];
  const paused = "91004";
  const running = "91005";
  const withDeadLetters = "91006";

  it("overview shows the counts per state, dead letters and the partition strip", async () => {
    for (const id of recovery) {
      await seedRequest(
        id,
        { jobDefinitionId: "JobDefinition://payroll/Close", application: APP, submitter: "alice" },
        "SUSPEND",
      );
    }
    await seedRequest(
      paused,
      { jobDefinitionId: "JobDefinition://payroll/Load", application: APP, submitter: "bob" },
      "PAUSE",
    );
    await seedRequest(running, { jobDefinitionId: "JobDefinition://hr/Sync", application: "HR", submitter: "carol" });
    await seedRequest(withDeadLetters, {
      jobDefinitionId: "JobDefinition://hr/Export",
      application: "HR",
      submitter: "dave",
    });
    for (let i = 1; i <= 15; i++) {
      await dlq.record(
        keys.partition(withDeadLetters),
        failedJob(withDeadLetters, 100 + i, i % 3 ? "UPDATE" : "ERROR"),
      );
    }
    await eventually(
      async () =>
        (await state(paused)) === "PAUSED" && (await state(recovery[2] as string)) === "ERROR_MANUAL_RECOVERY",
    );

    const { context, page, problems } = await open("viewer");
    try {
      await page.goto(`${gateway.adminUrl}/console`);
      // the live part is polled: wait until its snapshot has the seeded numbers
      await expect.poll(async () => page.locator("#needs-action").textContent(), { timeout: 30000 }).toBe("4");
      await expect.poll(async () => page.locator("#dead-letter-count").textContent(), { timeout: 30000 }).toBe("15");
      expect(await page.locator('[data-state="ERROR_MANUAL_RECOVERY"]').textContent()).toBe("3");
      expect(await page.locator('[data-state="RUNNING"]').textContent()).toBe("2");
      expect(await page.locator(".strip li").count()).toBe(PARTITIONS);
      await axe(page, "overview");
      await shot(page, "overview");
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("filters requests in the URL, opens one, and shows its timeline", async () => {
    const { context, page, problems } = await open("viewer");
    try {
      await page.goto(`${gateway.adminUrl}/console/requests`);
      await axe(page, "requests");
      await page.getByLabel("ERROR_MANUAL_RECOVERY").check();
      await page.getByLabel("Application").fill(APP);
      await page.getByRole("button", { name: "Apply filters" }).click();
      await page.waitForURL(/state=ERROR_MANUAL_RECOVERY/);
      expect(page.url()).toContain(`application=${APP}`);
      const ids = await page.locator("#request-results tbody td:first-child a").allTextContents();
      expect(ids.sort()).toEqual([...recovery].sort());
      await shot(page, "requests");
      // the same URL again (a bookmark) gives the same view
      await page.goto(page.url());
      expect(await page.locator("#request-results tbody tr").count()).toBe(3);
      await page.getByRole("link", { name: "Needs action" }).click();
      expect(await page.locator("#request-results tbody tr").count()).toBe(4);
      await page.getByRole("link", { name: recovery[0] as string, exact: true }).click();
      await page.waitForURL(/\/console\/requests\/\d+$/);
      await page.locator('#timeline li[data-kind="callback"][data-outcome="applied"]').first().waitFor();
      expect(await page.locator("form[method=post]").count()).toBe(0);
      await axe(page, "request detail (viewer)");
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("an operator cancels a running request with a reason; the timeline and the audit log show who", async () => {
    const { context, page, problems } = await open("operator");
    try {
      await page.goto(`${gateway.adminUrl}/console/requests/${running}`);
      const cancel = page.locator(`form[action="/console/requests/${running}/actions/cancel"]`);
      await cancel.getByLabel(/Reason/).fill("job hangs on the HR endpoint");
      await axe(page, "request detail (operator)");
      await cancel.getByRole("button", { name: "Cancel" }).click();
      await page.locator('p.notice[role="status"]').waitFor();
      expect(await page.locator('p.notice[role="status"]').textContent()).toMatch(/RUNNING → CANCELLING/);
      const entry = page.locator('#timeline li[data-kind="operator"]').first();
      expect(await entry.textContent()).toMatch(/otto.*job hangs on the HR endpoint/s);
      await shot(page, "request-detail");
      expect(await state(running)).toBe("CANCELLING");
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("an admin replays dead letters in bulk: estimate, typed confirmation, progress with abort, results", async () => {
    const { context, page, problems } = await open("admin");
    try {
      await page.goto(`${gateway.adminUrl}/console/dead-letters?requestId=${withDeadLetters}`);
      expect(await page.locator("#matching-count").textContent()).toBe("15");
      await axe(page, "dead letters");
      await shot(page, "dead-letters");
      await page.getByRole("button", { name: "Replay all matching…" }).click();
      await page.waitForURL(/\/console\/bulk\/[\w-]+$/);
      expect(await page.locator("#bulk-estimate").textContent()).toBe("15");
      // the confirmation sends no filter: only the token, the count and the reason
      const names = await page
        .locator('form[action$="/confirm"] [name]')
        .evaluateAll((els) => els.map((e) => e.getAttribute("name")));
      expect(names.sort()).toEqual(["_csrf", "count", "reason"]);
      await axe(page, "bulk confirmation");
      await page.getByLabel("Number of dead letters").fill("14");
      await page.getByLabel(/^Reason \(required/).fill("HR endpoint fixed");
      await page.getByRole("button", { name: /Replay 15 dead letters/ }).click();
      await page.locator('p.notice[role="alert"]').waitFor();
      expect(await page.locator('p.notice[role="alert"]').textContent()).toMatch(/not the estimate/);
      await page.getByLabel("Number of dead letters").fill("15");
      await page.getByLabel(/^Reason \(required/).fill("HR endpoint fixed");
      await shot(page, "bulk-confirm");
      await page.getByRole("button", { name: /Replay 15 dead letters/ }).click();
      await page.locator("#bulk-progress").waitFor();
      // running at 5 a second: the progress bar and the abort button are there while it runs
      await page.locator("progress#bulk-bar").waitFor();
      await page.getByRole("button", { name: "Abort" }).waitFor();
      await shot(page, "bulk-progress");
      await axe(page, "bulk progress");
      await page.reload();
      // htmx polls the progress until the results replace it
      await page.getByRole("heading", { name: "Step 4 of 4: results" }).waitFor({ timeout: 60000 });
      expect(await page.locator("#bulk-state").textContent()).toBe("done");
      expect(await page.locator("#bulk-processed").textContent()).toBe("15");
      expect(await page.locator("#bulk-succeeded").textContent()).toBe("15");
      await axe(page, "bulk results");
      await shot(page, "bulk-results");
      expect(await dlq.countMatching({ requestId: withDeadLetters })).toBe(0);

      await page.goto(`${gateway.adminUrl}/console/audit`);
      const rows = await page.locator("#audit-results tbody tr").allTextContents();
      expect(rows.some((r) => r.includes("bulk.confirm") && r.includes("HR endpoint fixed") && r.includes("ada"))).toBe(
        true,
      );
      expect(rows.some((r) => r.includes("request.cancel") && r.includes("otto"))).toBe(true);
      await axe(page, "audit log");
      await shot(page, "audit");
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
