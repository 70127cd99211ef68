import "@ess/testing/provided";
import { connect } from "node:net";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The gateway's own HTTP timeouts, on a real gateway process: slow clients are cut at the configured
// time while legitimate callbacks keep being answered.

const HEADERS_S = 2;
const REQUEST_S = 4;
const KEEP_ALIVE_S = 2;
let gateway: RunningProcess;
let port = 0;

beforeAll(async () => {
  gateway = await startApp("gateway", {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "2",
    HTTP_HEADERS_TIMEOUT_SECONDS: String(HEADERS_S),
    HTTP_REQUEST_TIMEOUT_SECONDS: String(REQUEST_S),
    HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: String(KEEP_ALIVE_S),
    LOG_LEVEL: "debug",
  });
  port = gateway.port;
});

afterAll(async () => {
  expect(await gateway?.stop()).toBe(0);
});

interface Cut {
  /** ms from connect until the server closed the socket */
  ms: number;
  /** what the server wrote before closing */
  answer: string;
}

/** Connects, writes `first`, then one of `drip` every `everyMs` until the server closes the socket. */
function slowClient(first: string, drip: string, everyMs: number, giveUpMs = 30000): Promise<Cut> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    let start = 0;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server held a slow client for ${giveUpMs} ms`));
    }, giveUpMs);
    socket.on("data", (d) => {
      answer += d.toString();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ ms: performance.now() - start, answer });
    });
    socket.on("connect", () => {
      start = performance.now();
      socket.write(first);
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(drip);
      }, everyMs);
    });
  });
}

async function register(id: string): Promise<string> {
  const res = await fetch(`${gateway.url}/gateway/v1/requests/${id}/executions`, { method: "POST" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { requestHandle: string }).requestHandle;
}

describe("HTTP timeouts", () => {
  it("cuts slowloris headers at HTTP_HEADERS_TIMEOUT_SECONDS while callbacks stay fast", async () => {
    const t0 = performance.now();
    const slow = Array.from({ length: 50 }, (_, i) =>
      slowClient(
        `POST /ess/rest/scheduler/v1/requests/${i + 1}/executionStatus HTTP/1.1\r\nHost: x\r\n`,
        "X-a: b\r\n",
        300,
      ),
    );
    const id = String(7_000_000 + Math.floor(Math.random() * 1000));
    const handle = await register(id);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      const res = await fetch(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ requestHandle: handle, status: "UPDATE" }),
      });
      expect(res.status).toBe(200);
      latencies.push(performance.now() - start);
    }
    const calledBackAt = performance.now();
    const cuts = await Promise.all(slow);
    const sorted = cuts.map((c) => c.ms).sort((a, b) => a - b);
    latencies.sort((a, b) => a - b);
    console.log(
      `slow headers cut after ${sorted[0]?.toFixed(0)}-${sorted.at(-1)?.toFixed(0)} ms (limit ${HEADERS_S} s); ` +
        `callbacks meanwhile: p50 ${latencies[10]?.toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms`,
    );
    for (const c of cuts) {
      // cut once the limit passed (Node checks every second), far below Node's default of 60 s
      expect(c.ms).toBeGreaterThanOrEqual(HEADERS_S * 1000 - 100);
      expect(c.ms).toBeLessThan(HEADERS_S * 1000 + 8000);
      if (c.answer !== "") expect(c.answer).toMatch(/^HTTP\/1\.1 408/);
    }
    // the callbacks were all answered while the slow clients still held their connections
    expect(calledBackAt - t0).toBeLessThan(sorted[0] ?? 0);
  });

  it("cuts a slow body at HTTP_REQUEST_TIMEOUT_SECONDS, logged at debug, not as an unexpected error", async () => {
    const id = String(7_001_000 + Math.floor(Math.random() * 1000));
    await register(id);
    const cut = await slowClient(
      `POST /ess/rest/scheduler/v1/requests/${id}/executionStatus HTTP/1.1\r\nHost: x\r\n` +
        "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
      " ",
      300,
    );
    console.log(`slow body cut after ${cut.ms.toFixed(0)} ms (limit ${REQUEST_S} s)`);
    expect(cut.ms).toBeGreaterThanOrEqual(REQUEST_S * 1000 - 100);
    expect(cut.ms).toBeLessThan(REQUEST_S * 1000 + 8000);
    expect(cut.answer).not.toMatch(/^HTTP\/1\.1 5/);
    await eventually(
      async () => /"level":20.*client aborted the request body/.test(gateway.output()),
      5000,
      "the debug line",
    );
    expect(gateway.output()).not.toMatch(/unexpected error/);
  });

  it("closes an idle keep-alive connection after HTTP_KEEP_ALIVE_TIMEOUT_SECONDS", async () => {
    const cut = await slowClient("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "", 1000);
    console.log(`idle keep-alive closed after ${cut.ms.toFixed(0)} ms (limit ${KEEP_ALIVE_S} s)`);
    expect(cut.answer).toMatch(/^HTTP\/1\.1 200/);
    expect(cut.answer).toMatch(/Keep-Alive: timeout=2/i);
    expect(cut.ms).toBeGreaterThanOrEqual(KEEP_ALIVE_S * 1000 - 100);
    expect(cut.ms).toBeLessThan(KEEP_ALIVE_S * 1000 + 8000);
  });

  it("refuses to start when the head may take longer than the whole request", async () => {
    await expect(
      startApp("gateway", {
        REDIS_URL: inject("redisUrl"),
        KEY_PREFIX: uniquePrefix(),
        HTTP_HEADERS_TIMEOUT_SECONDS: "20",
        HTTP_REQUEST_TIMEOUT_SECONDS: "10",
      }),
    ).rejects.toThrow(
      /exited early \(2\)[\s\S]*HTTP_HEADERS_TIMEOUT_SECONDS: must not exceed HTTP_REQUEST_TIMEOUT_SECONDS/,
    );
  });
});
