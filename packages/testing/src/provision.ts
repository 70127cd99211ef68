import { findRedisServer, RedisServer } from "./redis-server.js";

/** A Redis for a test run, and how to let go of it. */
export interface ProvisionedRedis {
  url: string;
  source: "REDIS_URL" | "redis-server" | "testcontainers";
  stop(): Promise<void>;
}

export const NO_REDIS_HELP = [
  "No Redis available for the tests. Do one of:",
  "  - install redis-server (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis),",
  "  - set REDIS_URL=redis://host:port to a Redis you can flush parts of,",
  "  - or start a Docker engine (testcontainers then runs redis:7-alpine).",
].join("\n");

/**
 * Redis for tests, never a mock: REDIS_URL if set, else a private redis-server on a free port,
 * else a container through testcontainers.
 */
export async function provisionRedis(env: Record<string, string | undefined> = process.env): Promise<ProvisionedRedis> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, source: "REDIS_URL", stop: async () => {} };
  const bin = findRedisServer();
  if (bin) {
    const server = await new RedisServer(bin).start();
    return { url: server.url, source: "redis-server", stop: () => server.stop() };
  }
  try {
    const { RedisContainer } = await import("@testcontainers/redis");
    const container = await new RedisContainer("redis:7-alpine").start();
    return {
      url: container.getConnectionUrl(),
      source: "testcontainers",
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    throw new Error(`${NO_REDIS_HELP}\n(testcontainers: ${(err as Error).message.split("\n")[0]})`);
  }
}
