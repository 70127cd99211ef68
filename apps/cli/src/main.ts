#!/usr/bin/env node
import { userInfo } from "node:os";
import { ConfigError, loadConfig } from "@ess/config";
import {
  AuditLog,
  CallbackQueues,
  createRedis,
  DeadLetters,
  Keys,
  RequestStore,
  SecretBox,
  WebhookStore,
} from "@ess/store";
import { runCli, USAGE, UsageError } from "./cli.js";

/** The OS user running the CLI (the audit log's actor for what it does), or "unknown". */
function cliUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? "unknown";
  }
}

/** `npm run cli -- <command>`: reads the environment like the services, talks to Redis. */
async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`ess-cli: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const redis = createRedis(config.REDIS_URL, "tool", {
    clusterNodes: config.REDIS_CLUSTER_NODES,
    clusterFailoverMs: config.REDIS_CLUSTER_FAILOVER_MS,
  });
  redis.on("error", () => {});
  const keys = new Keys(config.KEY_PREFIX, config.PARTITIONS);
  const queues = new CallbackQueues(redis, keys, { attempts: config.JOB_ATTEMPTS, backoffMs: config.JOB_BACKOFF_MS });
  const store = new RequestStore(redis, keys);
  // without WEBHOOK_SECRET the secrets cannot be opened: rotate says so; list, log and redeliver work
  const box = config.WEBHOOK_SECRET ? SecretBox.fromKeyEncryptionKey(config.WEBHOOK_SECRET) : undefined;
  try {
    return await runCli(argv, {
      deadLetters: new DeadLetters(redis, keys, (p, name) => queues.queue(p, name)),
      audit: new AuditLog(redis, keys, config.AUDIT_MAX_ENTRIES),
      actor: `cli:${cliUser()}`,
      store,
      queues,
      webhooks: new WebhookStore(store, box, config.WEBHOOK_LOG_LIMIT),
      rotationGraceSeconds: config.WEBHOOK_ROTATION_GRACE_SECONDS,
      defaultRate: config.DLQ_REPLAY_RATE,
      out: (line) => console.log(line),
    });
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`ess-cli: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`ess-cli: ${(err as Error).message}`);
    return 1;
  } finally {
    // the command's outcome is already decided; a queue that fails to close changes nothing
    await queues.close().catch(() => {});
    redis.disconnect();
  }
}

process.exit(await main());
