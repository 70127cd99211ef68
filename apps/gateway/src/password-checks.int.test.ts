import { spawn } from "node:child_process";
import { request } from "node:http";
import { newRequestId } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import type { serveApp } from "./server.js";
import { serveOnLoopback, useGatewayTestContext } from "./test-context.js";

// 200 concurrent wrong Basic passwords over a real socket while valid callers keep calling. The flood
// is sent by a separate process from another loopback address (127.0.0.2) than the valid callers
// (127.0.0.1), so the per-source bounds see two sources, as they would see an attacker and a client.

const ctx = await useGatewayTestContext();
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const TOKEN = "a-scheduler-token-that-is-long-enough";
let auth: Authenticator;
const errors: unknown[] = [];
let server: ReturnType<typeof serveApp>;
let base = "";
let id = "";

beforeAll(async () => {
  auth = await Authenticator.fromConfig({
    AUTH_USERS: "fleet:scheduler:fleet-password,batch:scheduler:batch-password,solo:scheduler:solo-password",
    AUTH_TOKENS: `sched:scheduler:${TOKEN}`,
    ALLOW_ANONYMOUS: false,
  });
  const app = createApp({ ...ctx.deps, ops: { auth, retryAfterSeconds: 1 } });
  let port: number;
  ({ server, port } = await serveOnLoopback(app, (err) => errors.push(err)));
  base = `http://127.0.0.1:${port}`;
  id = newRequestId();
  await ctx.store.register(id, "h".repeat(24), {});
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const FLOOD_SOURCE = "127.0.0.2";

/** One GET on a new connection from `localAddress`. */
function timed(
  authorization: string,
  localAddress = "127.0.0.1",
): Promise<{ status: number; ms: number; retryAfter: string | null }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/ess/rest/scheduler/v1/requests/${id}`,
      { headers: { authorization }, localAddress, agent: false },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - start,
            retryAfter: (res.headers["retry-after"] as string | undefined) ?? null,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Sends 200 distinct wrong passwords at once from FLOOD_SOURCE in a child process (half for a configured
 * user, half for unknown names); resolves with each answer's status, Retry-After and end time.
 */
function floodFromAnotherProcess(): Promise<{ status: number; retryAfter: string | null; endedAt: number }[]> {
  const script = `
    const http = require("node:http");
    const [url, source] = process.argv.slice(1);
    const start = performance.now();
    const one = (i) => new Promise((resolve) => {
      const user = i % 2 === 0 ? "fleet" : "intruder" + i;
      const authorization = "Basic " + Buffer.from(user + ":wrong-" + i).toString("base64");
      const req = http.request(url, { headers: { authorization }, localAddress: source, agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode, retryAfter: res.headers["retry-after"] ?? null,
          endedAt: performance.now() - start }));
      });
      req.on("error", (err) => resolve({ status: 0, retryAfter: String(err.code), endedAt: performance.now() - start }));
      req.end();
    });
    Promise.all(Array.from({ length: 200 }, (_, i) => one(i))).then((r) => process.stdout.write(JSON.stringify(r)));
  `;
  const child = spawn(process.execPath, ["-e", script, `${base}/ess/rest/scheduler/v1/requests/${id}`, FLOOD_SOURCE], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`flood exited ${code}`))));
  });
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;

describe("bounded cost of bad credentials", () => {
  it("keeps valid callers served while 200 wrong passwords arrive at once", async () => {
    // the valid cached credential: verified once before the flood
    expect((await timed(basic("fleet", "fleet-password"))).status).toBe(200);
    // for comparison: a first login with no flood at all, on this machine now
    const quiet = await timed(basic("solo", "solo-password"));
    expect(quiet.status).toBe(200);

    let maxRunning = 0;
    let maxWaiting = 0;
    const sampler = setInterval(() => {
      maxRunning = Math.max(maxRunning, auth.passwordChecks.running);
      maxWaiting = Math.max(maxWaiting, auth.passwordChecks.waiting);
    }, 1);
    const floodStart = performance.now();
    const flood = floodFromAnotherProcess();
    // valid callers during the flood (from this process): cached Basic, bearer, and a first (uncached) Basic login of another user
    // the uncached login comes once the flood holds a check (or 2 s on), so it cannot simply run first
    for (let waited = 0; auth.passwordChecks.running < 1 && waited < 2000; waited += 5) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const cached: number[] = [];
    const bearer: number[] = [];
    const uncachedStart = performance.now() - floodStart;
    const runningAtLogin = auth.passwordChecks.running;
    const uncached = timed(basic("batch", "batch-password"));
    for (let i = 0; i < 20; i++) {
      const [a, b] = await Promise.all([timed(basic("fleet", "fleet-password")), timed(`Bearer ${TOKEN}`)]);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      cached.push(a.ms);
      bearer.push(b.ms);
    }
    const login = await uncached;
    const wrong = await flood;
    clearInterval(sampler);

    const statuses = new Map<number, number>();
    for (const w of wrong) statuses.set(w.status, (statuses.get(w.status) ?? 0) + 1);
    const floodMs = Math.max(...wrong.map((w) => w.endedAt));
    console.log(
      `wrong passwords: ${JSON.stringify(Object.fromEntries(statuses))} in ${floodMs.toFixed(0)} ms; ` +
        `scrypt running max ${maxRunning}, waiting max ${maxWaiting}\n` +
        `valid cached Basic: p50 ${pct(cached, 0.5).toFixed(1)} ms, max ${Math.max(...cached).toFixed(1)} ms; ` +
        `bearer: p50 ${pct(bearer, 0.5).toFixed(1)} ms, max ${Math.max(...bearer).toFixed(1)} ms; ` +
        `uncached valid login: ${login.status} in ${login.ms.toFixed(0)} ms (started at ${uncachedStart.toFixed(0)} ms, ` +
        `${runningAtLogin} check(s) of the flood running); without a flood: ${quiet.ms.toFixed(0)} ms`,
    );

    // every wrong credential is refused: 401, or 429 with Retry-After when the checks queue is full
    for (const w of wrong) {
      expect([401, 429]).toContain(w.status);
      if (w.status === 429) expect(Number(w.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    expect(errors).toEqual([]);
    // the flood's source held one check at a time and was refused past it, before any scrypt: its 429s
    // carry Retry-After, and once it had sent AUTH_SOURCE_FAILURES wrong passwords every further one is refused
    expect(statuses.get(429) ?? 0).toBeGreaterThan(150);
    expect(runningAtLogin).toBe(1);
    // so nothing ever waited for a slot: the uncached valid login ran its one scrypt at once
    expect(maxRunning).toBeLessThanOrEqual(2);
    expect(maxWaiting).toBe(0);
    expect(login.status).toBe(200);
    // cached valid credentials never wait behind scrypt (generous bounds: the machine is shared and noisy,
    // and the flood's 200 connections are opened by this same process)
    expect(pct([...cached, ...bearer], 0.5)).toBeLessThan(250);
  });

  it("refuses a repeated wrong password from memory", async () => {
    const wrong = basic("fleet", "stale-password");
    const first = await Promise.all(Array.from({ length: 200 }, () => timed(wrong)));
    // one shared check: all 401, none refused for a full queue
    expect(first.map((r) => r.status)).toEqual(Array(200).fill(401));
    const again = await timed(wrong);
    expect(again.status).toBe(401);
    console.log(
      `200 identical wrong passwords: p50 ${pct(
        first.map((r) => r.ms),
        0.5,
      ).toFixed(0)} ms; repeated later: ${again.ms.toFixed(1)} ms`,
    );
  });
});
