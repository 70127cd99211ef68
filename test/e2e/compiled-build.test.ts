import "@ess/testing/provided";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { eventually, ROOT } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { callback, details, registerRequest } from "../support/http.js";

// The production build: `npm run build`, then the compiled gateway and worker from dist with plain node.
// No loader, no source condition: Node 20 cannot run a .ts file, so any import that still resolved to
// TypeScript (a workspace package's source, a missing dist file) stops the process at start-up.

interface Compiled {
  child: ChildProcess;
  output: () => string;
  port: number;
}

/** The environment the test runner has, without the source condition vitest.config.ts adds. */
function productionEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

async function startCompiled(app: "gateway" | "worker", env: Record<string, string>): Promise<Compiled> {
  const child = spawn(process.execPath, [`apps/${app}/dist/main.js`], {
    cwd: ROOT,
    env: productionEnv({ PORT: "0", ADMIN_PORT: "0", WORKER_METRICS_PORT: "0", HOST: "127.0.0.1", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const ready = app === "gateway" ? /"port":(\d+).*"gateway listening"/ : /"worker started"/;
  const m = await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`${app} exited (${child.exitCode}):\n${out}`);
      return ready.exec(out);
    },
    30000,
    `the compiled ${app} to start`,
  ).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw new Error(`${String(err)}\n${out}`);
  });
  return { child, output: () => out, port: Number(m[1] ?? 0) };
}

async function stop(p: Compiled | undefined): Promise<number | null | undefined> {
  if (!p || p.child.exitCode !== null) return p?.child.exitCode;
  const exited = new Promise<number | null>((resolve) => p.child.once("exit", (code) => resolve(code)));
  p.child.kill("SIGTERM");
  return exited;
}

let gateway: Compiled | undefined;
let worker: Compiled | undefined;

beforeAll(async () => {
  await promisify(execFile)("npm", ["run", "build", "--silent"], { cwd: ROOT, env: productionEnv({}) });
  const env = {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "2",
    ALLOW_ANONYMOUS: "true",
    LOG_LEVEL: "info",
  };
  [gateway, worker] = await Promise.all([startCompiled("gateway", env), startCompiled("worker", env)]);
}, 180000);

afterAll(async () => {
  expect(await Promise.all([stop(gateway), stop(worker)])).toEqual([0, 0]);
});

describe("the compiled build", () => {
  it("runs the gateway and the worker from dist with plain node, and a callback is applied", async () => {
    const base = `http://127.0.0.1:${gateway?.port}`;
    const id = "424242";
    const { requestHandle } = await registerRequest(base, id);
    expect(await callback(base, id, requestHandle, "SUCCESS")).toBe(200);
    const applied = await eventually(
      async () => {
        const d = await details(base, id);
        return d.state === "SUCCEEDED" && d;
      },
      15000,
      "the worker to apply the callback",
    );
    expect(applied).toMatchObject({ state: "SUCCEEDED", cause: "PROCESS_SUCCESS" });
    // the per-request lines (access log, job log) are written by the compiled code too
    const path = `/ess/rest/scheduler/v1/requests/${id}/executionStatus`;
    const accessLine = gateway
      ?.output()
      .split("\n")
      .find((l) => l.includes(`"path":"${path}"`));
    expect(JSON.parse(accessLine ?? "{}")).toMatchObject({ msg: "request", method: "POST", status: 200 });
    // the worker writes its lines when the turn that applied the callback ends: wait for the line
    const jobLine = new RegExp(`"requestId":"?${id}"?.*"job processed"`);
    await eventually(async () => jobLine.test(worker?.output() ?? ""), 5000, "the worker's job log line");
  });
});
