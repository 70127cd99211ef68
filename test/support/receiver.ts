import { spawn } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";
import { ROOT } from "@ess/testing";

/** One delivery as the receiver process saw it. */
export interface ReceivedDelivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** its answer; null while held */
  answered: number | null;
  /** per secret registered for its path: whether the signature verified with it (standardwebhooks) */
  verifiedWith: boolean[];
}

/** A webhook receiver running as its own process (test/support/webhook-receiver.ts). */
export interface ReceiverProcess {
  url: string;
  /** Registers the secrets a path's deliveries are checked against, from now on. */
  secrets(path: string, secrets: string[]): Promise<void>;
  received(path?: string): Promise<ReceivedDelivery[]>;
  held(): Promise<number>;
  release(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a receiver process with the given behaviour (RECEIVER_FAIL_FIRST, RECEIVER_HOLD). */
export async function startReceiver(env: Record<string, string> = {}): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/webhook-receiver.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`receiver exited (${code}): ${out}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const call = async (path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body) });
    return res.json() as Promise<unknown>;
  };
  return {
    url,
    async secrets(path, secrets) {
      await call("/_secrets", { path, secrets });
    },
    async received(path) {
      const all = (await call("/_received")) as ReceivedDelivery[];
      return path === undefined ? all : all.filter((d) => d.path === path);
    },
    async held() {
      return ((await call("/_held")) as { held: number }).held;
    },
    async release() {
      await call("/_release", {});
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}
