import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { keySlot } from "./slot.js";

/**
 * Connection roles. Never an ioredis keyPrefix: BullMQ builds its own keys.
 * - gateway: fail fast. No offline queue (a command while disconnected fails at once → 503),
 *   one retry per command, a command timeout, so no request hangs and no memory piles up. A command
 *   whose reply was lost with the connection is not re-sent after the reconnect: the admit script
 *   is not idempotent for a call without an Idempotency-Key, so a re-send could admit it twice.
 * - worker: wait. maxRetriesPerRequest null (BullMQ's requirement for blocking connections);
 *   commands queue while Redis is away and run when it is back.
 * - tool: CLI and tests; fail fast but with the offline queue for the first connect.
 *
 * With cluster nodes given, the same profile applies to every node connection of one ioredis Cluster
 * (see clusterOptions). The Cluster is returned as a Redis: it has the same command surface, BullMQ
 * takes it as a connection, and the few places that need a node (script cache, WAIT, per-partition
 * fan-out) ask isCluster().
 */
export type RedisRole = "gateway" | "worker" | "tool";

/** Options for creating a connection of a role. */
export interface RedisConnectOptions {
  commandTimeoutMs?: number;
  connectionName?: string;
  /** ioredis auto-pipelining: commands issued in one event-loop tick share one socket write. */
  autoPipelining?: boolean;
  /** Redis Cluster seed nodes ("host:port"); given, the connection is an ioredis Cluster. */
  clusterNodes?: readonly string[] | undefined;
  /** Redis Cluster: the longest failover to outlast (worker and tool roles). */
  clusterFailoverMs?: number;
}

/** Delay between two tries of a command refused during a failover (CLUSTERDOWN, closed node, TRYAGAIN). */
export const CLUSTER_RETRY_DELAY_MS = 200;

/**
 * The ioredis Cluster options of a role. Each one with its reason:
 * - enableAutoPipelining false: an auto-pipeline batches the commands of a node into one write; after
 *   a failover ioredis re-sends a whole batch to the new master, admits whose replies were lost
 *   included, and the batch is split per slot anyway (16 partitions: little to gain).
 * - scaleReads "master": every read sees the writes before it (replicas lag).
 * - retryDelayOnFailover / retryDelayOnClusterDown / retryDelayOnTryAgain 200 ms and maxRedirections
 *   failoverMs / 200 + 1 (worker, tool): a command waits out a failover (node timeout + election)
 *   instead of failing in the middle of it; delay x redirections > REDIS_CLUSTER_FAILOVER_MS.
 * - gateway: retryDelayOnFailover 0, so a command whose node connection closed is failed (503), never
 *   re-sent to the promoted replica: the old master may have run it and the replica may have it, and
 *   an admit without Idempotency-Key would then be admitted twice. MOVED, ASK, TRYAGAIN and CLUSTERDOWN
 *   mean "not run" and are followed; the command timeout bounds the whole (503 in a failover).
 * - slotsRefreshTimeout 2000 / slotsRefreshInterval 5000: the slot map is re-read soon after a
 *   failover even with no MOVED to trigger it.
 * - dnsLookup identity: the node addresses the cluster announces are used as they are.
 */
export function clusterOptions(
  role: RedisRole,
  redisOptions: NonNullable<ClusterOptions["redisOptions"]>,
  failoverMs = 35000,
): ClusterOptions & { redisOptions: NonNullable<ClusterOptions["redisOptions"]> } {
  const redirections = Math.ceil(failoverMs / CLUSTER_RETRY_DELAY_MS) + 1;
  return {
    redisOptions,
    enableAutoPipelining: false,
    scaleReads: "master",
    retryDelayOnFailover: role === "gateway" ? 0 : CLUSTER_RETRY_DELAY_MS,
    retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
    retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
    retryDelayOnMoved: 0,
    maxRedirections: role === "gateway" ? 16 : redirections,
    slotsRefreshTimeout: 2000,
    slotsRefreshInterval: 5000,
    enableOfflineQueue: role !== "gateway",
    enableReadyCheck: true,
    dnsLookup: (address, callback) => callback(null, address),
    // reconnect to the cluster forever, like a single connection: recovery needs no restart
    clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
}

/**
 * Makes a Cluster's disconnect() always end and its connect() always settle, in it and in every
 * duplicate of it (BullMQ duplicates the connection it is given for each Worker's blocking connection).
 * Both matter in a failover: BullMQ's Worker resets a blocking connection whose BZPOPMIN outlived its
 * timeout (a BZPOPMIN on a master that died is retried until the failover is over) by awaiting the
 * connection's "end", then its connect(). Were either left pending, that Worker would never read its
 * partition's queue again (nor would the other worker processes: their blocking connections meet the
 * same failover on the same master).
 *
 * - disconnect(): an ioredis Cluster emits "end" only once its node pool is empty. disconnect() empties
 *   it, but a reply still in flight can add a node back: a MOVED or ASK makes the Cluster open the named
 *   node, lazily, and a node that never connects never ends, so the Cluster stays "disconnecting". A node
 *   added while disconnecting is closed at once: the pool drains and "end" follows.
 * - connect(): when the ready check fails (CLUSTER INFO says cluster_state:fail, as it does until the
 *   failover is over) the Cluster reconnects by itself, but the promise connect() returned is neither
 *   resolved nor rejected. It is settled here by the Cluster's next "ready" (or rejected by its "end").
 */
export function settleClusterLifecycle(cluster: Cluster): Cluster {
  type Pending = { resolve: () => void; reject: (err: Error) => void };
  cluster.on("+node", (node: Redis) => {
    if (cluster.status === "disconnecting") node.disconnect();
  });
  // the callers of connect() still waiting, settled together by the next "ready" or "end"
  const waiting = new Set<Pending>();
  const settle = (how: (w: Pending) => void) => {
    const all = [...waiting];
    waiting.clear();
    for (const w of all) how(w);
  };
  cluster.on("ready", () => settle((w) => w.resolve()));
  cluster.on("end", () => settle((w) => w.reject(new Error("Connection is closed."))));
  const connect = cluster.connect.bind(cluster);
  cluster.connect = () =>
    new Promise<void>((resolve, reject) => {
      const w = { resolve, reject };
      waiting.add(w);
      connect().then(
        () => {
          waiting.delete(w);
          resolve();
        },
        (err: Error) => {
          waiting.delete(w);
          reject(err);
        },
      );
    });
  const duplicate = cluster.duplicate.bind(cluster);
  cluster.duplicate = (...args: Parameters<Cluster["duplicate"]>) => settleClusterLifecycle(duplicate(...args));
  return cluster;
}

/** True when the connection is an ioredis Cluster. */
export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true;
}

/** The node connection (master) serving `key`: a Cluster's own pooled connection, or the connection itself. */
export function nodeFor(redis: Redis, key: string): Redis {
  if (!isCluster(redis)) return redis;
  const cluster = redis as unknown as Cluster;
  const owner = cluster.slots[keySlot(key)]?.[0];
  const node = owner === undefined ? undefined : cluster.nodes("master").find((n) => nodeKey(n) === owner);
  if (!node) throw new Error(`no master known for slot ${keySlot(key)} (cluster slots not loaded)`);
  return node;
}

/** "host:port" as the Cluster's slot table names a node. */
export function nodeKey(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/**
 * Runs one command per item, for reads across partitions: their keys carry different hash tags, which
 * neither a transaction nor a pipeline may span on a Cluster (CROSSSLOT). The commands are issued
 * together, so on a single Redis they share the round trip as a pipeline would. Replies in item order
 * as [error, value] pairs, like exec().
 */
export async function fanOut<T, R>(
  items: readonly T[],
  run: (item: T) => Promise<R>,
): Promise<[Error | null, R | null][]> {
  return Promise.all(
    items.map((item) =>
      run(item).then(
        (v): [Error | null, R | null] => [null, v],
        (err: Error): [Error | null, R | null] => [err, null],
      ),
    ),
  );
}

/** The masters of a Cluster (the connection itself for a single Redis). */
export function masters(redis: Redis): Redis[] {
  return isCluster(redis) ? (redis as unknown as Cluster).nodes("master") : [redis];
}

/** The one Redis connection factory. */
export function createRedis(url: string, role: RedisRole, opts: RedisConnectOptions = {}): Redis {
  const base: RedisOptions = {
    connectionName: opts.connectionName ?? `ess-${role}`,
    // reconnect forever, backing off to 2 s: recovery after an outage needs no restart
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectTimeout: 5000,
  };
  const profile: RedisOptions =
    role === "gateway"
      ? {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          autoResendUnfulfilledCommands: false,
          commandTimeout: opts.commandTimeoutMs ?? 2000,
        }
      : role === "worker"
        ? { maxRetriesPerRequest: null, enableReadyCheck: true }
        : { maxRetriesPerRequest: 2, commandTimeout: opts.commandTimeoutMs ?? 10000 };
  if (opts.clusterNodes && opts.clusterNodes.length > 0) {
    // credentials and TLS from the URL; the nodes' addresses from the cluster's slot map
    const u = new URL(url);
    // a node connection does not reconnect by itself (the Cluster does) and queues nothing offline
    const { retryStrategy: _r, enableOfflineQueue: _q, ...nodeBase } = { ...base, ...profile };
    const nodeOptions = {
      ...nodeBase,
      replyMapping: "legacy" as const,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(u.protocol === "rediss:" ? { tls: {} } : {}),
    };
    const seeds = opts.clusterNodes.map((n) => {
      const i = n.lastIndexOf(":");
      return { host: n.slice(0, i), port: Number(n.slice(i + 1)) };
    });
    const options = clusterOptions(role, nodeOptions, opts.clusterFailoverMs);
    const cluster = settleClusterLifecycle(new Cluster(seeds, options as ConstructorParameters<typeof Cluster>[1]));
    return cluster as unknown as Redis;
  }
  const options = {
    ...base,
    ...profile,
    enableAutoPipelining: opts.autoPipelining ?? false,
    replyMapping: "legacy" as const,
  };
  return new Redis(url, options);
}

/**
 * Resolves once the connection is ready (or rejects after timeoutMs). On a Cluster also once every
 * node's connection is up: ioredis opens them lazily, and a command that finds its node's connection
 * still opening fails ("Connection is closed") under the gateway profile, which re-sends nothing.
 */
export async function waitReady(redis: Redis, timeoutMs = 10000): Promise<void> {
  await waitStatusReady(redis, timeoutMs);
  if (isCluster(redis)) {
    // keyless commands (BullMQ's INFO at start) go to any node, replicas included
    const nodes = (redis as unknown as Cluster).nodes("all");
    await Promise.all(nodes.map((node) => waitStatusReady(node, timeoutMs, true)));
  }
}

async function waitStatusReady(redis: Redis, timeoutMs: number, connect = false): Promise<void> {
  if (redis.status === "ready") return;
  if (connect && (redis.status === "wait" || redis.status === "end")) redis.connect().catch(() => {});
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
    };
    redis.on("ready", onReady);
  });
}

/**
 * True for Redis's refusal of a write at `maxmemory` under `noeviction` ("OOM command not allowed
 * when used memory > 'maxmemory'"): the store is full, not broken. Also matches the same refusal
 * reported from inside a script (BullMQ's, whose scripts declare no flags) and the error ioredis
 * raises for a pipeline or transaction that contained it.
 */
export function isOutOfMemory(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (/^(?:ERR [^\n]*?)?-?OOM\b/.test(err.message) || err.message.includes("OOM command not allowed")) return true;
  const previous = (err as { previousErrors?: unknown[] }).previousErrors;
  return Array.isArray(previous) && previous.some(isOutOfMemory);
}

/** Where a partition lives: its hash tag, its slot, and the master serving that slot ("host:port"). */
export interface PartitionPlacement {
  partition: number;
  tag: string;
  slot: number;
  master: string;
}

/**
 * The partition → slot → master map, as the cluster serves it now (CLUSTER SLOTS). On a single Redis
 * every partition is on the one server, named by its connection's address.
 */
export async function partitionMap(
  redis: Redis,
  keys: { partitions: number; tag(p: number): string; slot(p: number): number },
): Promise<PartitionPlacement[]> {
  let masterOf = (_slot: number) => nodeKey(redis);
  if (isCluster(redis)) {
    const ranges = (await redis.cluster("SLOTS")) as unknown as [number, number, [string, number]][];
    masterOf = (slot) => {
      const r = ranges.find(([lo, hi]) => slot >= lo && slot <= hi);
      return r ? `${r[2][0]}:${r[2][1]}` : "unassigned";
    };
  }
  return Array.from({ length: keys.partitions }, (_, p) => {
    const slot = keys.slot(p);
    return { partition: p, tag: keys.tag(p), slot, master: masterOf(slot) };
  });
}
