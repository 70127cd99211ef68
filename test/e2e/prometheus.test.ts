import "@ess/testing/provided";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { eventually, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { postJson, registerRequest } from "../support/http.js";

// The dashboard and the alert rules of deploy/, checked against a real Prometheus (Debian's package,
// which .ci/run installs) scraping a real gateway and a real worker after real traffic: every
// dashboard query and every alert expression must evaluate without error and return series.

const RULES = join(ROOT, "deploy/prometheus/alerts.yml");
const DASHBOARD = join(ROOT, "deploy/grafana/dashboards/ess-callback-gateway.json");
/** Grafana's $__rate_interval is at least four scrape intervals; the test scrapes every second. */
const RATE_INTERVAL = "10s";

function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

const prometheusBin = findBinary("prometheus");
const promtoolBin = findBinary("promtool");
const missing = !prometheusBin || !promtoolBin;
if (missing && !process.env.CI) {
  console.warn("prometheus.test.ts: prometheus/promtool not installed (apt-get install prometheus); skipped");
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

interface PromResult {
  status: string;
  error?: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

describe.runIf(missing && process.env.CI)("Prometheus in CI", () => {
  it("prometheus and promtool are installed (.ci/run installs the Debian package)", () => {
    expect({ prometheus: prometheusBin, promtool: promtoolBin }).toEqual({
      prometheus: expect.any(String),
      promtool: expect.any(String),
    });
  });
});

describe.skipIf(missing)("the dashboard and the alert rules against a real Prometheus", () => {
  let gateway: RunningProcess;
  let worker: RunningProcess;
  let prometheus: ChildProcess;
  let promUrl: string;
  let promOut = "";
  let subscriber: Server;
  let dir: string;
  const requestIds: string[] = [];

  async function query(expr: string): Promise<PromResult> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as PromResult;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ess-prom-"));
    // a webhook subscriber that fails every other delivery: retries, failures and dead letters
    let n = 0;
    subscriber = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.statusCode = n++ % 2 === 0 ? 500 : 200;
        res.end();
      });
    });
    await new Promise<void>((r) => subscriber.listen(0, "127.0.0.1", r));

    const env = {
      REDIS_URL: inject("redisUrl"),
      KEY_PREFIX: uniquePrefix(),
      PARTITIONS: "2",
      // low enough that the burst below is partly refused with 429
      RATE_LIMIT_PER_SECOND: "100",
      RATE_LIMIT_BURST: "100",
      WEBHOOK_SECRET: "prometheus-test-secret-0123",
      WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
      WEBHOOK_ATTEMPTS: "2",
      WEBHOOK_BACKOFF_MS: "50",
      DLQ_SWEEP_INTERVAL_MS: "500",
      ACCESS_LOG: "false",
    };
    [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const config = {
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [RULES],
      scrape_configs: [
        { job_name: "ess-gateway", static_configs: [{ targets: [gateway.adminUrl.replace("http://", "")] }] },
        { job_name: "ess-worker", static_configs: [{ targets: [worker.metricsUrl.replace("http://", "")] }] },
      ],
    };
    // JSON is YAML
    writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config));
    prometheus = spawn(
      prometheusBin as string,
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.stdout?.on("data", (d: Buffer) => {
      promOut += d.toString();
    });
    prometheus.stderr?.on("data", (d: Buffer) => {
      promOut += d.toString();
    });
    await eventually(
      async () => {
        if (prometheus.exitCode !== null) throw new Error(`prometheus exited: ${promOut}`);
        return (await fetch(`${promUrl}/-/ready`)).ok;
      },
      30000,
      "prometheus to be ready",
    );
    await eventually(
      async () => {
        const r = await query('count(up{job=~"ess-gateway|ess-worker"} == 1)');
        return r.data.result[0]?.value[1] === "2";
      },
      30000,
      "both targets scraped",
    );
    await drive();
  }, 120000);

  afterAll(async () => {
    prometheus?.kill("SIGTERM");
    await Promise.all([gateway?.stop(), worker?.stop()]);
    await new Promise((r) => subscriber?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Sends a request; a 429 (the rate limit below) is waited out and retried. */
  async function send(fn: () => Promise<Response>): Promise<Response> {
    for (;;) {
      const res = await fn();
      if (res.status !== 429) return res;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Registrations, callbacks (some to unknown ids), webhooks that fail half the time, a 429 burst. */
  async function drive(): Promise<void> {
    const hook = `http://127.0.0.1:${(subscriber.address() as AddressInfo).port}/hook`;
    for (let i = 0; i < 20; i++) {
      const id = String(910000 + i);
      requestIds.push(id);
      let registered: Awaited<ReturnType<typeof registerRequest>> | undefined;
      while (!registered) registered = await registerRequest(gateway.url, id).catch(() => undefined);
      const { requestHandle } = registered;
      const sub = await send(() =>
        postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}/subscribe`, { callbackUrl: hook }),
      );
      expect(sub.status).toBe(200);
      for (const status of ["UPDATE", "UPDATE", "SUCCESS"]) {
        const res = await send(() =>
          postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, { requestHandle, status }),
        );
        expect(res.status).toBe(200);
      }
      const unknown = await send(() =>
        postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}9/executionStatus`, {
          requestHandle: "x",
          status: "SUCCESS",
        }),
      );
      expect(unknown.status).toBe(404);
    }
    // a burst past the rate limit: 250 calls at once against 100 tokens refilled at 100/s. A loaded
    // machine can stretch one burst over the 1.5 s that refill all it takes, so it is sent again
    // (up to five times) until one call is refused
    const burst: number[] = [];
    for (let round = 0; round < 5 && !burst.includes(429); round++) {
      burst.push(
        ...(await Promise.all(
          Array.from({ length: 250 }, (_, i) =>
            postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/${920000 + i}/executionStatus`, {
              requestHandle: "x",
              status: "UPDATE",
            }).then(async (r) => {
              await r.arrayBuffer();
              return r.status;
            }),
          ),
        )),
      );
    }
    expect(burst).toContain(429);
    // the worker took every callback (applied, or buffered and then drained when two of a request ran
    // at once) and the webhooks ran (some dead-lettered), as Prometheus saw it
    await eventually(
      async () => {
        const r = await query('sum(ess_worker_callbacks_total{job="ess-worker", result=~"applied|buffered"})');
        return Number(r.data.result[0]?.value[1] ?? 0) >= 60;
      },
      60000,
      "the applied callbacks in Prometheus",
    );
    await eventually(
      async () => {
        const r = await query('sum(ess_webhook_deliveries_total{job="ess-worker", outcome="failed"})');
        return Number(r.data.result[0]?.value[1] ?? 0) > 0;
      },
      60000,
      "failed webhook deliveries in Prometheus",
    );
  }

  /** Evaluates expr until it returns series (a rate needs two scrapes after the traffic); fails on an error. */
  async function expectSeries(expr: string, what: string): Promise<void> {
    let last: PromResult | undefined;
    try {
      await eventually(
        async () => {
          last = await query(expr);
          if (last.status !== "success") throw new Error(`${what}: ${last.error}`);
          return last.data.result.length > 0;
        },
        15000,
        `${what} to return series`,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n  query: ${expr}\n  last answer: ${JSON.stringify(last)}`);
    }
  }

  it("promtool check rules accepts the rule file", async () => {
    const { stdout } = await promisify(execFile)(promtoolBin as string, ["check", "rules", RULES]);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("promtool check config accepts the compose profile's Prometheus config (and its rules)", async () => {
    const { stdout } = await promisify(execFile)(promtoolBin as string, ["check", "config", "prometheus.yml"], {
      cwd: join(ROOT, "deploy/prometheus"),
    });
    expect(stdout).toContain("SUCCESS");
  });

  it("every dashboard query returns series after the traffic", async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
      panels: { title: string; targets?: { expr: string; refId: string }[] }[];
    };
    const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
    expect(targets.length).toBeGreaterThanOrEqual(dashboard.panels.length);
    for (const t of targets) {
      const expr = t.expr.replaceAll("$__rate_interval", RATE_INTERVAL);
      expect(expr, `${t.panel}: only $__rate_interval is substituted`).not.toContain("$");
      await expectSeries(expr, `panel "${t.panel}" ${t.refId}`);
    }
  });

  it("every alert rule is loaded, evaluates without error, and its signal returns series", async () => {
    interface Rule {
      name: string;
      query: string;
      type: string;
      health: string;
      lastError?: string;
      lastEvaluation: string;
    }
    const rulesNow = async () => {
      const r = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
        data: { groups: { rules: Rule[] }[] };
      };
      return r.data.groups.flatMap((g) => g.rules);
    };
    const source = readFileSync(RULES, "utf8");
    const declared = [...source.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    // evaluated by Prometheus itself at least once since the traffic
    const since = Date.now();
    const rules = await eventually(
      async () => {
        const rs = await rulesNow();
        return rs.length === declared.length && rs.every((r) => Date.parse(r.lastEvaluation) > since) && rs;
      },
      15000,
      "every rule evaluated",
    );
    expect(rules.map((r) => r.name).sort()).toEqual([...declared].sort());
    for (const rule of rules) {
      expect(rule.health, `${rule.name}: ${rule.lastError}`).toBe("ok");
      const full = await query(rule.query);
      expect(full.status, `${rule.name}: ${full.error}`).toBe("success");
      // "<signal> <comparison> <threshold>": the signal must exist after the traffic
      const m = /^([\s\S]+?)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.e+]+)$/.exec(rule.query.trim());
      expect(m, `${rule.name}: expression ends in a comparison with a threshold: ${rule.query}`).not.toBeNull();
      await expectSeries(m?.[1] as string, `alert ${rule.name}'s signal`);
    }
  });

  it("every runbook link of the rules has its section in the README", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const anchors = [...readFileSync(RULES, "utf8").matchAll(/runbook: "README\.md#(\w+)"/g)].map((m) => m[1]);
    expect(anchors.length).toBe([...readFileSync(RULES, "utf8").matchAll(/- alert: /g)].length);
    for (const a of anchors) expect(readme, `README heading for ${a}`).toMatch(new RegExp(`^#+ .*\\b${a}\\b`, "im"));
  });

  it("exported label values stay bounded: no request id and no path in any ess_ series", async () => {
    const res = await fetch(`${promUrl}/api/v1/series?match[]=${encodeURIComponent('{__name__=~"ess_.+"}')}`);
    const { data } = (await res.json()) as { data: Record<string, string>[] };
    expect(data.length).toBeGreaterThan(0);
    const perFamily = new Map<string, number>();
    for (const series of data) {
      const name = series.__name__ as string;
      perFamily.set(name, (perFamily.get(name) ?? 0) + 1);
      for (const [label, v] of Object.entries(series)) {
        if (label === "__name__" || label === "instance") continue;
        expect(v, `${name}{${label}}`).not.toMatch(/\/|9[12]\d{4}/);
      }
    }
    for (const [name, n] of perFamily) expect(n, name).toBeLessThan(500);
  });
});
