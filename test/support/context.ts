import { randomBytes } from "node:crypto";
import { createAdminApp, createApp, type GatewayDeps } from "@ess/gateway";
import {
  CallbackQueues,
  createRedis,
  DEFAULT_LIMITS,
  DeadLetters,
  Keys,
  RequestStore,
  SecretBox,
  type StoreLimits,
  WebhookStore,
} from "@ess/store";
import type { Redis } from "ioredis";
import { afterAll, inject } from "vitest";
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

export interface TestContext {
  url: string;
  prefix: string;
  redis: Redis;
  /** a connection with the worker's profile (BullMQ workers need maxRetriesPerRequest: null) */
  workerRedis: Redis;
  keys: Keys;
  store: RequestStore;
  queues: CallbackQueues;
  app: ReturnType<typeof createApp>;
  adminApp: ReturnType<typeof createAdminApp>;
  deadLetters: DeadLetters;
  /** what the two apps were built from: spread it to build a variant (`createApp({ ...ctx.deps, ... })`) */
  deps: GatewayDeps;
  errors: unknown[];
}

/**
 * Real Redis (from the project's globalSetup), a unique prefix, a store, queues and the gateway app
 * built in-process. Closed after the file's tests.
 */
export function useTestContext(
  opts: {
    partitions?: number;
    limits?: Partial<StoreLimits>;
    maxBodyBytes?: number;
    attempts?: number;
    backoffMs?: number;
  } = {},
): TestContext {
  const url = inject("redisUrl");
  const prefix = uniquePrefix();
  const redis = createRedis(url, "tool");
  const workerRedis = createRedis(url, "worker");
  const keys = new Keys(prefix, opts.partitions ?? 4);
  const store = new RequestStore(redis, keys, { ...DEFAULT_LIMITS, ...opts.limits });
  const queues = new CallbackQueues(redis, keys, { attempts: opts.attempts ?? 3, backoffMs: opts.backoffMs ?? 10 });
  const errors: unknown[] = [];
  const deadLetters = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
  const deps: GatewayDeps = {
    store,
    queues,
    deadLetters,
    replayRate: 100,
    maxBodyBytes: opts.maxBodyBytes ?? 16384,
    enqueueTimeoutMs: 2000,
    logError: (err: unknown) => errors.push(err),
    webhooks: new WebhookStore(store, testSecretBox),
  };
  const app = createApp(deps);
  const adminApp = createAdminApp(deps);
  afterAll(async () => {
    await queues.close();
    await dropPrefix(redis, prefix);
    await redis.quit();
    await workerRedis.quit();
  });
  return { url, prefix, redis, workerRedis, keys, store, queues, app, adminApp, deadLetters, deps, errors };
}

let nextId = 1000;
/** A request id not used before in this process. */
export function newRequestId(): string {
  nextId += 1;
  return String(nextId);
}
