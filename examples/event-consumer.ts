/**
 * A runnable consumer of the per-partition event streams, through a Redis consumer group: every
 * state change is read by exactly one consumer of the group, and acknowledged once handled, so a
 * consumer that crashes hands its pending events to the next (XAUTOCLAIM).
 *
 *   REDIS_URL=redis://127.0.0.1:6379 KEY_PREFIX=ess PARTITIONS=16 npx tsx examples/event-consumer.ts
 *
 * GROUP (default "example") names the group; CONSUMER (default host-pid) this consumer. A new group
 * starts at the streams' ends ("$"); FROM_START=1 reads what the streams still hold.
 */
import { hostname } from "node:os";
import { cloudEventJson, eventSource } from "@ess/contract";
import { createRedis, Keys } from "@ess/store";

const redis = createRedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", "worker");
const keys = new Keys(process.env.KEY_PREFIX ?? "ess", Number(process.env.PARTITIONS ?? 16));
const group = process.env.GROUP ?? "example";
const consumer = process.env.CONSUMER ?? `${hostname()}-${process.pid}`;
const streams = Array.from({ length: keys.partitions }, (_, p) => keys.events(p));

async function main(): Promise<void> {
  for (const stream of streams) {
    await redis.xgroup("CREATE", stream, group, process.env.FROM_START ? "0" : "$", "MKSTREAM").catch((err: Error) => {
      if (!err.message.includes("BUSYGROUP")) throw err;
    });
  }
  console.log(JSON.stringify({ msg: "consuming", group, consumer, partitions: keys.partitions }));
  let stop = false;
  process.on("SIGINT", () => {
    stop = true;
  });
  process.on("SIGTERM", () => {
    stop = true;
  });
  while (!stop) {
    // new entries for this consumer (">"), waiting up to 2 s
    const res = (await redis.xreadgroup(
      "GROUP",
      group,
      consumer,
      "COUNT",
      100,
      "BLOCK",
      2000,
      "STREAMS",
      ...streams,
      ...streams.map(() => ">"),
    )) as [string, [string, string[]][]][] | null;
    for (const [stream, entries] of res ?? []) {
      const partition = streams.indexOf(stream);
      for (const [id, flat] of entries) {
        const fields: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
        // the same CloudEvent that webhooks and SSE carry; handle the event here
        console.log(cloudEventJson(eventSource(keys.prefix), partition, id, fields));
        await redis.xack(stream, group, id);
      }
    }
  }
  await redis.quit();
}

await main();
