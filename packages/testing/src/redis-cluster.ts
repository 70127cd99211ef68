import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { findRedisServer, freePort, RedisServer } from "./redis-server.js";

const run = promisify(execFile);

/** True when nothing listens on (or holds) the loopback port now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Where redis-cli is, or null when it is not on PATH. */
export async function findRedisCli(): Promise<string | null> {
  try {
    return (await run("sh", ["-c", "command -v redis-cli"])).stdout.trim() || null;
  } catch {
    return null;
  }
}

export interface RedisClusterOptions {
  /** masters (default 3); each gets `replicas` replicas (default 1) */
  masters?: number;
  replicas?: number;
  /** cluster-node-timeout in ms: how long a master may be silent before its replica takes over (default 1000) */
  nodeTimeoutMs?: number;
  /** AOF on every node (appendfsync everysec); default off */
  appendonly?: boolean;
}

/**
 * A Redis Cluster of redis-server child processes on loopback: `masters` masters with `replicas`
 * replicas each (default 3 + 3), created by `redis-cli --cluster create`. Ready when every slot is
 * served and every replica is in sync. kill -9 a node with kill(port); the cluster fails over by itself.
 */
export class RedisCluster {
  readonly nodes: RedisServer[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), "ess-cluster-"));

  constructor(
    readonly bin: string,
    readonly cli: string,
    readonly options: RedisClusterOptions = {},
  ) {}

  /** "127.0.0.1:port" of every node, for REDIS_CLUSTER_NODES. */
  get seeds(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`);
  }

  /** A URL of the first node: REDIS_URL for the credentials (none here) beside REDIS_CLUSTER_NODES. */
  get url(): string {
    return this.nodes[0]?.url ?? "";
  }

  /**
   * Starts the nodes, creates the cluster and waits until it serves every slot with every replica in
   * sync. A node that cannot start (its port, or the bus port 10000 above it, taken meanwhile by another
   * process) makes it start over on other ports, up to three times.
   */
  async start(): Promise<this> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startNodes();
        break;
      } catch (err) {
        await this.stop().catch(() => {});
        this.nodes.length = 0;
        if (attempt === 3) throw err;
      }
    }
    await run(
      this.cli,
      ["--cluster", "create", ...this.seeds, "--cluster-replicas", String(this.options.replicas ?? 1), "--cluster-yes"],
      { timeout: 30000 },
    );
    await this.waitHealthy(this.options.masters ?? 3, this.options.replicas ?? 1, 30000);
    return this;
  }

  private async startNodes(): Promise<void> {
    const masters = this.options.masters ?? 3;
    const replicas = this.options.replicas ?? 1;
    const total = masters * (1 + replicas);
    const ports: number[] = [];
    while (ports.length < total) {
      const p = await freePort();
      // redis-server also listens on port + 10000 (the cluster bus)
      if (!ports.includes(p) && p + 10000 < 65536 && (await portFree(p + 10000))) ports.push(p);
    }
    const extra = [
      "--cluster-enabled",
      "yes",
      "--cluster-node-timeout",
      String(this.options.nodeTimeoutMs ?? 1000),
      "--repl-diskless-sync",
      "yes",
      "--repl-diskless-sync-delay",
      "0",
    ];
    for (const port of ports) {
      const dir = join(this.dir, String(port));
      this.nodes.push(
        new RedisServer(this.bin, {
          port,
          dir,
          extraArgs: [...extra, "--cluster-config-file", join(dir, "nodes.conf")],
          ...(this.options.appendonly ? { appendonly: true, fsync: "everysec" as const } : {}),
        }),
      );
    }
    const started = await Promise.allSettled(this.nodes.map((n) => n.start()));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** Waits until the cluster is ok with `masters` masters each having `replicas` replicas in sync. */
  async waitHealthy(masters = this.options.masters ?? 3, replicas = this.options.replicas ?? 1, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    for (;;) {
      last = await this.health(masters, replicas).catch((err: Error) => err.message);
      if (last === "ok") return;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy after ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async health(masters: number, replicas: number): Promise<string> {
    const live = this.nodes.filter((n) => n.running);
    for (const node of live) {
      const c = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on("error", () => {});
      try {
        await c.connect();
        const info = await c.cluster("INFO");
        if (!/cluster_state:ok/.test(info)) return `${node.port}: ${info.split("\n")[0]}`;
        const repl = await c.info("replication");
        if (/role:master/.test(repl) && /cluster_slots_assigned:16384/.test(info)) {
          const online = (repl.match(/slave\d+:.*state=online/g) ?? []).length;
          const served = ((await c.cluster("SHARDS")) as unknown[]).length;
          if (served < masters) return `${served} shards`;
          if (online < replicas && (await this.ownsSlots(c))) return `${node.port}: ${online} replicas online`;
        }
      } finally {
        c.disconnect();
      }
    }
    return "ok";
  }

  private async ownsSlots(c: Redis): Promise<boolean> {
    const myself = String(await c.cluster("MYID"));
    const slots = (await c.cluster("SLOTS")) as unknown as [number, number, [string, number, string]][];
    return slots.some((s) => s[2][2] === myself);
  }

  /** The node listening on a port. */
  node(port: number): RedisServer {
    const n = this.nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no cluster node on port ${port}`);
    return n;
  }

  /** The ports of the masters that serve slots now (asked of a live node). */
  async masterPorts(): Promise<number[]> {
    const live = this.nodes.find((n) => n.running);
    if (!live) return [];
    const c = new Redis(live.url, { maxRetriesPerRequest: 1 });
    try {
      const slots = (await c.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
      return [...new Set(slots.map((s) => s[2][1]))].sort((a, b) => a - b);
    } finally {
      c.disconnect();
    }
  }

  /** SIGTERM every node. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}

/** A local cluster from the redis-server and redis-cli binaries, or null (with the reason) when they are missing. */
export async function startLocalCluster(
  options: RedisClusterOptions = {},
): Promise<{ cluster: RedisCluster } | { cluster: null; reason: string }> {
  const bin = findRedisServer();
  const cli = await findRedisCli();
  if (!bin || !cli)
    return { cluster: null, reason: "redis-server and redis-cli are needed on PATH for a Redis Cluster" };
  try {
    return { cluster: await new RedisCluster(bin, cli, options).start() };
  } catch (err) {
    return { cluster: null, reason: (err as Error).message };
  }
}
