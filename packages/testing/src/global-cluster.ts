import type { TestProject } from "vitest/node";
import { provisionRedis } from "./provision.js";
import "./provided.js";
import { startLocalCluster } from "./redis-cluster.js";

/**
 * The cluster project's Redis: a local Redis Cluster (3 masters, 3 replicas) started from the
 * redis-server and redis-cli binaries. Under CI=true a cluster that cannot start fails the run;
 * locally the suites warn and run on a single Redis instead.
 */
export default async function setup(project: TestProject) {
  const started = await startLocalCluster();
  if (started.cluster) {
    const { cluster } = started;
    project.provide("redisUrl", cluster.url);
    project.provide("redisClusterNodes", cluster.seeds.join(","));
    return async () => {
      await cluster.stop();
    };
  }
  if (process.env.CI === "true")
    throw new Error(`the Redis Cluster for the cluster suites did not start: ${started.reason}`);
  console.warn(`WARNING: no Redis Cluster (${started.reason}); the cluster suites run on a single Redis`);
  const redis = await provisionRedis();
  project.provide("redisUrl", redis.url);
  project.provide("redisClusterNodes", "");
  return async () => {
    await redis.stop();
  };
}
