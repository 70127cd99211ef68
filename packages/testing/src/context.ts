import { randomBytes } from "node:crypto";
import {
  CallbackQueues,
  createRedis,
  DEFAULT_LIMITS,
  DeadLetters,
  Keys,
  type RedisRole,
  RequestStore,
  SecretBox,
  type StoreLimits,
  waitReady,
} from "@ess/store";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, inject } from "vitest";
import "./provided.js";

/** Deletes every key under a test's prefix (tests may run against a user's REDIS_URL). */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
}

/** The key-encryption key (WEBHOOK_SECRET) of the tests' webhook secrets. */
export const TEST_WEBHOOK_KEK = "test-webhook-kek-0123456789";
/** The secret box of TEST_WEBHOOK_KEK (derived once: scrypt takes a moment). */
export const testSecretBox = SecretBox.fromKeyEncryptionKey(TEST_WEBHOOK_KEK);

/** A fresh key prefix, so test files can share one Redis without seeing each other. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString("hex")}`;
}

let nextId = 1000;
/** A request id not used before in this process. */
export function newRequestId(): string {
  nextId += 1;
  return String(nextId);
}

export interface TestContextOptions {
  partitions?: number;
  limits?: Partial<StoreLimits>;
  attempts?: number;
  backoffMs?: number;
  /** the connection profile of `redis` (default "tool"); the in-process gateway uses "gateway", as production */
  role?: RedisRole;
}

/** The Redis side of a test: a connection, a unique prefix, the store, queues and dead letters over it. */
export interface TestContext {
  url: string;
  prefix: string;
  redis: Redis;
  /** a connection with the worker's profile (BullMQ workers need maxRetriesPerRequest: null) */
  workerRedis: Redis;
  keys: Keys;
  store: RequestStore;
  queues: CallbackQueues;
  deadLetters: DeadLetters;
}

/**
 * Real Redis (from the project's globalSetup, see global-redis.ts), a unique prefix, and the store,
 * queues and dead letters built as the processes build them. Closed after the file's tests.
 */
export function useTestContext(opts: TestContextOptions = {}): TestContext {
  const url = inject("redisUrl");
  const prefix = uniquePrefix();
  const redis = createRedis(url, opts.role ?? "tool");
  const workerRedis = createRedis(url, "worker");
  const keys = new Keys(prefix, opts.partitions ?? 4);
  const store = new RequestStore(redis, keys, { ...DEFAULT_LIMITS, ...opts.limits });
  const queues = new CallbackQueues(redis, keys, { attempts: opts.attempts ?? 3, backoffMs: opts.backoffMs ?? 10 });
  const deadLetters = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
  // the gateway profile has no offline queue: like main.ts, wait until the connection is up
  beforeAll(() => waitReady(redis));
  afterAll(async () => {
    await queues.close();
    await dropPrefix(redis, prefix);
    await redis.quit();
    await workerRedis.quit();
  });
  return { url, prefix, redis, workerRedis, keys, store, queues, deadLetters };
}
