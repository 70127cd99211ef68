import "@ess/testing/provided";
import { createRedis, Keys, RequestStore, SchedulerStore } from "@ess/store";
import { dropPrefix, uniquePrefix } from "@ess/testing/context";
import { afterAll, describe, expect, inject, it } from "vitest";
import { runCli } from "../support/cli.js";

const env = { REDIS_URL: inject("redisUrl"), KEY_PREFIX: uniquePrefix(), PARTITIONS: "4" };
const redis = createRedis(env.REDIS_URL, "tool");
const store = new RequestStore(redis, new Keys(env.KEY_PREFIX, 4));

const cli = (...args: string[]) => runCli(env, ...args);

afterAll(async () => {
  await dropPrefix(redis, env.KEY_PREFIX);
  await redis.quit();
});

describe("npm run cli -- requests", () => {
  it("--state CANCELLING --since 1h prints a table of the requests that entered CANCELLING in the last hour", async () => {
    const ids = ["770001", "770002", "770003", "770004"];
    for (const id of ids)
      await store.register(id, `h${id}`, { metadata: { jobDefinitionId: "JobDefinition://cli", submitter: "ops" } });
    const scheduler = new SchedulerStore(store);
    await scheduler.cancel("770002");
    await scheduler.cancel("770004");
    // cancelled two hours ago: outside --since 1h
    await store.register("770005", "h5", {});
    await scheduler.cancel("770005", Date.now() - 2 * 3_600_000);

    const { code, out } = await cli("requests", "--state", "CANCELLING", "--since", "1h");
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^requestId\s+state\s+since\s+submitted\s+jobDefinitionId\s+submitter/);
    const rows = lines.slice(1, -1).map((l) => l.split(/\s{2,}/));
    // newest state change first
    expect(rows.map((r) => r[0])).toEqual(["770004", "770002"]);
    expect(rows[0]).toEqual(expect.arrayContaining(["CANCELLING", "JobDefinition://cli", "ops"]));
    expect(lines.at(-1)).toBe("2 shown, no more");

    const json = await cli(
      "requests",
      "--job",
      "JobDefinition://cli",
      "--limit",
      "3",
      "--order-by",
      "submissionTime:asc",
      "--json",
    );
    const page = JSON.parse(json.out) as { items: { requestId: string; handle?: string }[]; nextCursor: string | null };
    expect(page.items.map((i) => i.requestId)).toEqual(["770001", "770002", "770003"]);
    expect(page.items[0]).not.toHaveProperty("handle");
    const rest = await cli(
      "requests",
      "--job",
      "JobDefinition://cli",
      "--order-by",
      "submissionTime:asc",
      "--cursor",
      page.nextCursor as string,
    );
    expect(rest.out).toMatch(/^770004\s/m);
  });

  it("names what is wrong with a query", async () => {
    const bad = await cli("requests", "--state", "STUCK");
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/'STUCK' is not a state/);
  });
});
