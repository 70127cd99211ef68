import { Redis, type RedisOptions } from "ioredis";

/**
 * Connection roles. Never an ioredis keyPrefix: BullMQ builds its own keys.
 * - gateway: fail fast. No offline queue (a command while disconnected fails at once → 503),
 *   one retry per command, a command timeout, so no request hangs and no memory piles up. A command
 *   whose reply was lost with the connection is not re-sent after the reconnect: the admit script
 *   is not idempotent for a call without an Idempotency-Key, so a re-send could admit it twice.
 * - worker: wait. maxRetriesPerRequest null (BullMQ's requirement for blocking connections);
 *   commands queue while Redis is away and run when it is back.
 * - tool: CLI and tests; fail fast but with the offline queue for the first connect.
 */
export type RedisRole = "gateway" | "worker" | "tool";

/** Options for creating a connection of a role. */
export interface RedisConnectOptions {
  commandTimeoutMs?: number;
  connectionName?: string;
  /** ioredis auto-pipelining: commands issued in one event-loop tick share one socket write. */
  autoPipelining?: boolean;
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
  const options = {
    ...base,
    ...profile,
    enableAutoPipelining: opts.autoPipelining ?? false,
    replyMapping: "legacy" as const,
  };
  return new Redis(url, options);
}

/** Resolves once the connection is ready (or rejects after timeoutMs). */
export async function waitReady(redis: Redis, timeoutMs = 10000): Promise<void> {
  if (redis.status === "ready") return;
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
