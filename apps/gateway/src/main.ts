import { armShutdownDeadline, configOrExit, createLogger, httpTimeouts, loadConfig, storeLimits } from "@ess/config";
import { CallbackQueues, createRedis, DeadLetters, Keys, RequestStore, waitReady } from "@ess/store";
import { replaySpan, startTracing } from "@ess/telemetry";
import { Authenticator, CredentialsError } from "./auth/authenticator.js";
import { IdleConnections } from "./idle-connections.js";
import { GatewayMetrics } from "./metrics.js";
import { serveApp } from "./server.js";
import { watchRedisErrors, wireGateway } from "./wiring.js";

/** Entry point: reads config, opens Redis, serves, and shuts down cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const { config, timeouts } = configOrExit("gateway", () => {
    const config = loadConfig();
    return { config, timeouts: httpTimeouts(config) };
  });
  const log = createLogger(config, "gateway");
  // off unless OTEL_* variables ask for it (see @ess/telemetry); loads nothing when off
  const tracing = await startTracing("ess-gateway");
  if (tracing) log.info({}, "OpenTelemetry tracing on");
  let auth: Authenticator;
  try {
    auth = await Authenticator.fromConfig(config);
  } catch (err) {
    if (err instanceof CredentialsError) {
      log.fatal({ err: err.message }, "refusing to start");
      console.error(`gateway: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  if (auth.anonymous) log.warn("ALLOW_ANONYMOUS=true and no credentials: every caller has every role (local use only)");
  const redis = createRedis(config.REDIS_URL, "gateway", {
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    autoPipelining: config.REDIS_AUTO_PIPELINING,
    clusterNodes: config.REDIS_CLUSTER_NODES,
    clusterFailoverMs: config.REDIS_CLUSTER_FAILOVER_MS,
  });
  const metrics = new GatewayMetrics();
  watchRedisErrors(redis, metrics, log);
  await waitReady(redis, 30000).catch((err: Error) => {
    log.fatal({ err: err.message, redis: config.REDIS_URL.replace(/\/\/[^@]*@/, "//***@") }, "cannot reach Redis");
    process.exit(1);
  });
  const keys = new Keys(config.KEY_PREFIX, config.PARTITIONS);
  const store = new RequestStore(redis, keys, storeLimits(config));
  const queues = new CallbackQueues(redis, keys, { attempts: config.JOB_ATTEMPTS, backoffMs: config.JOB_BACKOFF_MS });
  const deadLetters = new DeadLetters(
    redis,
    keys,
    (p, name) => queues.queue(p, name),
    tracing ? replaySpan(tracing) : undefined,
  );
  // the callback listener's connections, counted once it listens: whether a batch may wait for others
  const connections = new IdleConnections();
  const { deps, app, adminApp, callbackRoute, readiness, backlog, sseShutdown } = wireGateway(config, {
    redis,
    store,
    queues,
    deadLetters,
    auth,
    log,
    tracing,
    metrics,
    idleConnections: () => connections.idle,
  });

  const server = serveApp(
    {
      fetch: app.fetch,
      route: callbackRoute,
      port: config.PORT,
      hostname: config.HOST,
      timeouts,
      logError: deps.logError,
    },
    (info) => log.info({ port: info.port, host: config.HOST }, "gateway listening"),
  );
  connections.attach(server);
  const adminServer = serveApp(
    { fetch: adminApp.fetch, port: config.ADMIN_PORT, hostname: config.ADMIN_HOST, timeouts, logError: deps.logError },
    (info) => log.info({ port: info.port, host: config.ADMIN_HOST }, "admin listening"),
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    readiness.stopping = true;
    backlog?.stop();
    log.info({ signal }, "stopping: no new connections, finishing in-flight requests");
    armShutdownDeadline(config.SHUTDOWN_TIMEOUT_SECONDS, log);
    sseShutdown.abort();
    adminServer.close();
    server.close(async () => {
      // exiting anyway: a close that fails (Redis gone) is logged and the next one still runs
      const closing = (what: string) => (err: Error) => log.warn({ err: err.message }, `${what} did not close cleanly`);
      await queues.close().catch(closing("queues"));
      await redis.quit().catch(closing("redis connection"));
      await tracing?.shutdown().catch(closing("tracing"));
      log.info("stopped");
      process.exit(0);
    });
    // idle keep-alive connections would hold close() open
    for (const s of [server, adminServer]) s.closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

await main();
