import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** Where redis-server is, or null when it is not on PATH. */
export function findRedisServer(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export interface RedisServerOptions {
  /** AOF on (appendfsync always unless fsync says otherwise); default off. */
  appendonly?: boolean;
  fsync?: "always" | "everysec";
  /** Data directory (default: a fresh temp dir). */
  dir?: string;
  port?: number;
  /** More redis-server arguments (e.g. cluster mode). */
  extraArgs?: readonly string[];
}

/** A redis-server child process the caller owns: start, kill -9, restart on the same port and dir. */
export class RedisServer {
  private child: ChildProcess | null = null;
  readonly dir: string;
  port = 0;

  constructor(
    readonly bin: string,
    readonly options: RedisServerOptions = {},
  ) {
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), "ess-redis-"));
    mkdirSync(this.dir, { recursive: true });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server and waits until it answers PING. */
  async start(): Promise<this> {
    if (!this.port) this.port = this.options.port ?? (await freePort());
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--maxmemory-policy",
      "noeviction",
      "--protected-mode",
      "no",
      "--loglevel",
      "warning",
      "--appendonly",
      this.options.appendonly ? "yes" : "no",
    ];
    if (this.options.appendonly) args.push("--appendfsync", this.options.fsync ?? "always");
    if (this.options.extraArgs) args.push(...this.options.extraArgs);
    const child = spawn(this.bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const deadline = Date.now() + 15000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
      const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on("error", () => {});
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return this;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${this.port}: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The process id (undefined when not running). */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** SIGKILL, as a crash would; resolves when the process is gone. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM and wait. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  /** Starts again on the same port and directory (AOF is replayed when on). */
  async restart(): Promise<this> {
    await this.kill();
    return this.start();
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill(sig);
    });
    this.child = null;
  }
}
