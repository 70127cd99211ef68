import type { DeadLetter } from "@ess/store";
import { failedJob } from "@ess/testing";
import { describe, expect, it } from "vitest";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 4 });

async function seed(): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for (let i = 0; i < 12; i++) {
    const rid = String(500 + (i % 4));
    out.push(
      ...(await ctx.deadLetters.record(
        ctx.keys.partition(rid),
        failedJob(rid, i + 1, i % 2 ? "UPDATE" : "ERROR"),
        1_760_000_000_000 + i,
      )),
    );
  }
  return out;
}

const admin = (path: string, init?: RequestInit) => ctx.adminApp.request(path, init);
const post = (path: string, body: unknown) =>
  admin(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("admin dead-letter API", () => {
  it("lists with filters and cursor paging, shows one", async () => {
    const seeded = await seed();
    const ids: string[] = [];
    let cursor = "";
    for (;;) {
      const res = await admin(`/admin/dead-letters?limit=5${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: DeadLetter[]; nextCursor: string | null };
      ids.push(...page.items.map((e) => e.id));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(ids).toEqual(seeded.map((e) => e.id));
    const errs = (await (await admin("/admin/dead-letters?status=ERROR&requestId=500")).json()) as {
      items: DeadLetter[];
    };
    expect(errs.items.map((e) => e.id)).toEqual(
      seeded.filter((e) => e.status === "ERROR" && e.requestId === "500").map((e) => e.id),
    );
    const ranged = (await (await admin("/admin/dead-letters?from=1760000000003&to=1760000000005")).json()) as {
      items: DeadLetter[];
    };
    expect(ranged.items.length).toBe(3);
    const one = await admin(`/admin/dead-letters/${seeded[0]?.id}`);
    expect(await one.json()).toMatchObject({ id: seeded[0]?.id, reason: "attempts-exhausted" });
    expect((await admin("/admin/dead-letters/0.nope")).status).toBe(404);
  });

  it("answers 400 for bad filters", async () => {
    for (const q of ["reason=bogus", "limit=0", "partition=99", "requestId=0", "cursor=zzz", "unknown=1"]) {
      const res = await admin(`/admin/dead-letters?${q}`);
      expect(res.status, q).toBe(400);
    }
    expect((await post("/admin/dead-letters/replay", { ids: ["x"], all: true })).status).toBe(400);
    expect((await post("/admin/dead-letters/purge", {})).status).toBe(400);
  });

  it("replays one, a list, or a filter (as an operation with progress); purges by id, filter and age", async () => {
    const page = (await (await admin("/admin/dead-letters?requestId=501")).json()) as { items: DeadLetter[] };
    const [a, b, c] = page.items;
    const one = await admin(`/admin/dead-letters/${a?.id}/replay`, { method: "POST" });
    expect(await one.json()).toEqual({ id: a?.id, result: "replayed" });
    expect(await ctx.queues.queue(a?.partition ?? 0).getJob(a?.jobId ?? "")).toBeTruthy();
    const list = await post("/admin/dead-letters/replay", { ids: [b?.id, "9.missing"] });
    expect(await list.json()).toEqual({ results: { [b?.id ?? ""]: "replayed", "9.missing": "not-found" } });
    const bulk = await post("/admin/dead-letters/replay", { filter: { requestId: "502" }, rate: 50 });
    expect(bulk.status).toBe(202);
    const op = (await bulk.json()) as { id: string; total: number; state: string };
    expect(op).toMatchObject({ state: "running", total: 3 });
    expect((await admin(`/admin/dead-letters/replays/${op.id}`)).status).toBe(200);
    expect((await post(`/admin/dead-letters/replays/${op.id}/cancel`, {})).status).toBe(200);

    expect((await admin(`/admin/dead-letters/${c?.id}`, { method: "DELETE" })).status).toBe(204);
    expect((await admin(`/admin/dead-letters/${c?.id}`, { method: "DELETE" })).status).toBe(404);
    const byFilter = await post("/admin/dead-letters/purge", { filter: { requestId: "503" } });
    expect(await byFilter.json()).toEqual({ purged: 3 });
    const old = await post("/admin/dead-letters/purge", { olderThanSeconds: 0 });
    expect(((await old.json()) as { purged: number }).purged).toBeGreaterThan(0);
    expect(await ctx.deadLetters.count()).toBe(0);
  });
});
