import "@ess/testing/provided";
import { createRedis, keySlot, nodeKey, waitReady } from "@ess/store";
import { startLocalCluster } from "@ess/testing";
import { testRedis } from "@ess/testing/context";
import { Worker } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";

// A Cluster connection's disconnect() must end and its connect() must settle, whatever a failover
// does meanwhile: BullMQ resets a Worker's blocking connection (a duplicate of the connection it is
// given) by awaiting its "end" and then its connect(), and a reset left pending leaves that partition's
// queue unread by the worker for good. In a failover the blocking command is retried on another node
// and answered MOVED while the reset disconnects, and the reconnect's ready check finds the cluster
// down (cluster_state:fail) until the replica has taken over.
const onCluster = inject("redisClusterNodes") !== "";

/** Sends a read of `key` to a master that does not own it and disconnects before the MOVED is handled. */
async function disconnectWithMovedInFlight(cluster: Cluster): Promise<{ ended: boolean; command: string }> {
  await waitReady(cluster as unknown as Redis);
  const key = "{disconnect-race}:k";
  const slot = keySlot(key);
  const owner = cluster.slots[slot]?.[0];
  const other = cluster
    .nodes("master")
    .map(nodeKey)
    .find((k) => k !== owner);
  if (!owner || !other) throw new Error("the cluster has no second master");
  // a stale slot map, as right after a failover: the command goes to a node that answers MOVED
  cluster.slots[slot] = [other];
  const command = cluster.get(key).then(
    () => "answered",
    (err: Error) => `failed: ${err.message}`,
  );
  const ended = new Promise<boolean>((resolve) => {
    cluster.once("end", () => resolve(true));
    setTimeout(() => resolve(false), 5000);
  });
  cluster.disconnect();
  return {
    ended: await ended,
    command: await Promise.race([command, new Promise<string>((r) => setTimeout(() => r("pending"), 1000))]),
  };
}

describe.skipIf(!onCluster)("a Cluster connection on a Redis Cluster", () => {
  it("ends when disconnected while a MOVED redirection is in flight (no node left opening in the pool)", async () => {
    const cluster = testRedis("worker") as unknown as Cluster;
    const { ended, command } = await disconnectWithMovedInFlight(cluster);
    expect(ended).toBe(true);
    expect(cluster.status).toBe("end");
    expect(cluster.nodes("all")).toEqual([]);
    // the redirected command is failed, not kept pending in a connection that is gone
    expect(command).toMatch(/^failed: /);
  });

  it("so does the blocking connection a BullMQ Worker duplicates from it", async () => {
    const connection = testRedis("worker");
    // no processor: the Worker does not start fetching, the test drives its blocking connection
    const worker = new Worker("race", undefined, { connection, prefix: "{disconnect-race}" });
    try {
      const blocking = (await worker.getBackend().blockingClient) as unknown as Cluster;
      expect(blocking).not.toBe(connection);
      const { ended } = await disconnectWithMovedInFlight(blocking);
      expect(ended).toBe(true);
      expect(blocking.status).toBe("end");
    } finally {
      await worker.close();
      connection.disconnect();
    }
  });

  it("connect() settles once the cluster is up again, though its first ready checks found the cluster down", async () => {
    // a cluster of its own, without replicas: a killed master leaves it down (cluster_state:fail) until it is back
    const started = await startLocalCluster({ replicas: 0 });
    if (!started.cluster) throw new Error(started.reason);
    const local = started.cluster;
    const cluster = createRedis(local.url, "worker", { clusterNodes: local.seeds }) as unknown as Cluster;
    cluster.on("error", () => {});
    try {
      await waitReady(cluster as unknown as Redis);
      const [victim, survivor] = await local.masterPorts();
      await local.node(victim as number).kill();
      await waitDown(local.node(survivor as number).url);
      // as BullMQ resets a blocking connection: disconnect, wait for "end", connect again
      const ended = new Promise((resolve) => cluster.once("end", resolve));
      cluster.disconnect();
      await ended;
      let outcome = "pending";
      const connecting = cluster.connect().then(
        () => {
          outcome = "connected";
        },
        (err: Error) => {
          outcome = `failed: ${err.message}`;
        },
      );
      // its ready checks keep failing while the master is away
      await new Promise((r) => setTimeout(r, 2000));
      expect(outcome).toBe("pending");
      await local.node(victim as number).start();
      await local.waitHealthy(3, 0);
      await Promise.race([connecting, new Promise((r) => setTimeout(r, 15000))]);
      expect(outcome).toBe("connected");
      expect(cluster.status).toBe("ready");
      expect(await cluster.set("{lifecycle}:k", "v")).toBe("OK");
    } finally {
      cluster.disconnect();
      await local.stop();
    }
  });
});

/** Waits until the node at url reports the cluster down. */
async function waitDown(url: string): Promise<void> {
  const node = createRedis(url, "tool", {});
  try {
    for (let i = 0; i < 100; i++) {
      if (/cluster_state:fail/.test(String(await node.cluster("INFO")))) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("the cluster never reported the killed master's slots down");
  } finally {
    node.disconnect();
  }
}
