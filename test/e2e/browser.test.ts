import "@ess/testing/provided";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// Headless Chromium (Debian's package; .ci/run installs it) opens /docs and /admin/queues on a real
// gateway and saves screenshots under test-artifacts/.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "test-artifacts");
const ADMIN = { user: "root-op", password: "browser-pass-1" };
const PARTITIONS = 3;

// CI must run it (.ci/run installs Chromium); on a developer's machine without Chromium it is skipped, saying so
const MISSING = !existsSync(CHROMIUM) && !process.env.CI;
if (MISSING)
  console.warn(`browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium, or set CHROMIUM_PATH)`);

let gateway: RunningProcess;
let browser: Browser;

beforeAll(async () => {
  if (MISSING) return;
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  gateway = await startApp("gateway", {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: String(PARTITIONS),
    ALLOW_ANONYMOUS: "false",
    AUTH_USERS: `${ADMIN.user}:admin:${ADMIN.password}`,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
});

async function open(url: string, auth: boolean) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (auth) {
    const token = Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString("base64");
    await context.setExtraHTTPHeaders({ authorization: `Basic ${token}` });
  }
  const page = await context.newPage();
  const requested: string[] = [];
  page.on("request", (r) => requested.push(r.url()));
  const res = await page.goto(url, { waitUntil: "load", timeout: 60000 });
  return { context, page, res, requested };
}

describe.skipIf(MISSING)("browser", () => {
  it("renders the API reference at /docs from local assets only", async () => {
    const { context, page, res, requested } = await open(`${gateway.url}/docs`, false);
    try {
      expect(res?.status()).toBe(200);
      await page.getByText("ESS callback gateway", { exact: false }).first().waitFor({ timeout: 60000 });
      await page
        .locator('[data-path="/ess/rest/scheduler/v1/requests/{requestId}/executionStatus"]')
        .first()
        .waitFor({ timeout: 60000 });
      await page.locator('[data-path="/gateway/v1/requests/{requestId}/executions"]').first().waitFor();
      await page.screenshot({ path: join(ARTIFACTS, "docs.png"), fullPage: true });
      // offline: the page loads nothing from outside the gateway
      for (const u of requested) expect(u.startsWith(gateway.url) || u.startsWith("data:"), u).toBe(true);
    } finally {
      await context.close();
    }
  });

  it("shows every partition queue on the bull-board dashboard at /admin/queues", async () => {
    // without credentials: 401 (a browser would prompt; headless Chromium gives up)
    expect((await fetch(`${gateway.adminUrl}/admin/queues`)).status).toBe(401);

    const { context, page, res } = await open(`${gateway.adminUrl}/admin/queues`, true);
    try {
      expect(res?.status()).toBe(200);
      for (let p = 0; p < PARTITIONS; p++) {
        await page.getByText(`partition ${p}`, { exact: true }).first().waitFor({ timeout: 60000 });
      }
      await page.screenshot({ path: join(ARTIFACTS, "queues.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
