import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout this package sits in (apps/<app>/src/main.ts is started from there). */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/**
 * The node flags a production start gives the app: node-flags.json of the checkout `root` (none when
 * it has no such file). The one definition: `npm start` reads it, and a test checks that the other
 * starts (start:* scripts, Dockerfile, docker-compose.yml, deploy/k8s) carry the same flags.
 */
export function nodeFlags(app: "gateway" | "worker", root: string = ROOT): string[] {
  const file = join(root, "node-flags.json");
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, "utf8")) as Record<string, string[]>)[app] ?? [];
}

/** A gateway or worker started as its own OS process (node + tsx, as `npm start` runs it). */
export interface RunningProcess {
  child: ChildProcess;
  /** The port a gateway listens on (0 for a worker). */
  port: number;
  url: string;
  /** The gateway's admin listener. */
  adminUrl: string;
  /** The worker's metrics listener. */
  metricsUrl: string;
  /** Output so far (JSON log lines). */
  output(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
}

/**
 * Reads the processes' output from now on without keeping it: a benchmark's access and job log lines
 * (hundreds of bytes per callback) would otherwise pile up in `output()`. The output stays read, so a
 * child never blocks on a full pipe.
 */
export function discardOutput(...processes: RunningProcess[]): void {
  for (const p of processes)
    for (const stream of [p.child.stdout, p.child.stderr]) {
      stream?.removeAllListeners("data");
      stream?.resume();
    }
}

/**
 * Starts apps/<app>/src/main.ts with env; resolves once it reports it is up. `nodeArgs` go to node
 * before the script (the bench's `--cpu-prof`, which NODE_OPTIONS does not allow). `root`: the
 * checkout to run it from (the bench's --baseline), default this one. `compiled`: run the build's
 * apps/<app>/dist/main.js with plain node, as `npm start` does (after `npm run build`), instead of
 * the source through tsx, with the production node flags (nodeFlags).
 */
export async function startApp(
  app: "gateway" | "worker",
  env: Record<string, string>,
  nodeArgs: string[] = [],
  root: string = ROOT,
  compiled = false,
): Promise<RunningProcess> {
  // the production flags first, so that nodeArgs can override them
  const flags = compiled ? nodeFlags(app, root) : [];
  const main = compiled ? [`apps/${app}/dist/main.js`] : ["--import", "tsx", `apps/${app}/src/main.ts`];
  const inherited = { ...process.env };
  // the source condition (NODE_OPTIONS of `npm run bench`) would send plain node to the .ts sources
  if (compiled) delete inherited.NODE_OPTIONS;
  const child = spawn(process.execPath, [...flags, ...nodeArgs, ...main], {
    cwd: root,
    env: {
      ...inherited,
      PORT: "0",
      ADMIN_PORT: "0",
      WORKER_METRICS_PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      // the suites run without credentials unless they configure some
      ALLOW_ANONYMOUS: "true",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const ready = app === "gateway" ? /"port":(\d+).*"gateway listening"/ : /"worker started"/;
  const adminReady = /"port":(\d+).*"admin listening"/;
  const metricsReady = /"port":(\d+).*"metrics listening"/;
  const deadline = Date.now() + 30000;
  let port = 0;
  let adminPort = 0;
  for (;;) {
    const m = ready.exec(out);
    const a = adminReady.exec(out);
    if (m && (app === "worker" || a)) {
      port = m[1] ? Number(m[1]) : 0;
      adminPort = a?.[1] ? Number(a[1]) : 0;
      break;
    }
    if (child.exitCode !== null) throw new Error(`${app} exited early (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${app} did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    metricsUrl: `http://127.0.0.1:${metricsReady.exec(out)?.[1] ?? 0}`,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Polls fn until it returns a truthy value or the timeout passes. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 15000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
