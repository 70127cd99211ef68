import type { TestProject } from "vitest/node";
import { provisionRedis } from "./provision.js";
import "./provided.js";

/** One Redis per test project: REDIS_URL, else a private redis-server, else testcontainers. */
export default async function setup(project: TestProject) {
  const redis = await provisionRedis();
  project.provide("redisUrl", redis.url);
  return async () => {
    await redis.stop();
  };
}
