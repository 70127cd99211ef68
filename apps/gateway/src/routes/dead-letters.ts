import { parseOrThrow } from "@ess/contract";
import { EssError } from "@ess/domain";
import { DEAD_LETTER_REASONS, type DeadLetterQuery } from "@ess/store";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv } from "../env.js";

const time = z.union([z.number().int().min(0), z.iso.datetime().transform((s) => Date.parse(s))]);

/** Filters, as query parameters (strings) or in a JSON body. */
const filterSchema = z.strictObject({
  partition: z.coerce.number().int().min(0).optional(),
  requestId: z.string().optional(),
  status: z.string().min(1).max(40).optional(),
  reason: z.enum(DEAD_LETTER_REASONS).optional(),
  from: z.union([time, z.string().regex(/^\d+$/).transform(Number)]).optional(),
  to: z.union([time, z.string().regex(/^\d+$/).transform(Number)]).optional(),
});

function toQuery(f: z.output<typeof filterSchema>, partitions: number): DeadLetterQuery {
  if (f.partition !== undefined && f.partition >= partitions) {
    throw new EssError("INVALID_BODY", `partition must be below ${partitions}`);
  }
  return {
    partition: f.partition,
    requestId: f.requestId === undefined ? undefined : requireRequestId(f.requestId),
    status: f.status,
    reason: f.reason,
    from: f.from,
    to: f.to,
  };
}

const listSchema = filterSchema.extend({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().max(400).optional(),
});

const replaySchema = z.strictObject({
  ids: z.array(z.string().min(1)).min(1).max(1000).optional(),
  filter: filterSchema.optional(),
  all: z.literal(true).optional(),
  rate: z.number().int().min(1).max(100000).optional(),
});

const purgeSchema = z.strictObject({
  ids: z.array(z.string().min(1)).min(1).max(1000).optional(),
  filter: filterSchema.optional(),
  all: z.literal(true).optional(),
  olderThanSeconds: z.number().int().min(0).optional(),
});

/** Exactly one of ids / filter / all (/ olderThanSeconds) must be given. */
function oneTarget(body: Record<string, unknown>, keys: string[]): void {
  const given = keys.filter((k) => body[k] !== undefined);
  if (given.length !== 1) throw new EssError("INVALID_BODY", `give exactly one of ${keys.join(", ")}`);
}

async function jsonBody(c: Context<AppEnv>) {
  requireJsonMediaType(c);
  return readJson(c, c.get("deps").maxBodyBytes * 8);
}

/** Dead-letter operations, on the admin listener: list, show, replay, purge, bulk-replay progress. */
export const deadLetterRoutes = new Hono<AppEnv>()
  .get("/admin/dead-letters", async (c) => {
    const { deadLetters, store } = c.get("deps");
    const q = parseOrThrow(listSchema, c.req.query());
    const page = await deadLetters.list(toQuery(q, store.keys.partitions), { limit: q.limit ?? 100, cursor: q.cursor });
    return c.json({ ...page, count: page.items.length });
  })
  .get("/admin/dead-letters/replays/:opId", async (c) => {
    const op = await c.get("deps").deadLetters.getReplay(c.req.param("opId"));
    if (!op) throw new EssError("ROUTE_NOT_FOUND", "no such replay operation");
    return c.json(op);
  })
  .post("/admin/dead-letters/replays/:opId/cancel", async (c) => {
    const op = await c.get("deps").deadLetters.cancelReplay(c.req.param("opId"));
    if (!op) throw new EssError("ROUTE_NOT_FOUND", "no such replay operation");
    return c.json(op);
  })
  .post("/admin/dead-letters/replay", async (c) => {
    const { deadLetters, queues, store, replayRate } = c.get("deps");
    const body = parseOrThrow(replaySchema, await jsonBody(c));
    oneTarget(body, ["ids", "filter", "all"]);
    if (body.ids) {
      const results: Record<string, string> = {};
      for (const id of body.ids) results[id] = await deadLetters.replay(id);
      return c.json({ results });
    }
    const filter = body.filter ? toQuery(body.filter, store.keys.partitions) : {};
    const op = await deadLetters.startReplay(filter, body.rate ?? replayRate, queues.ops());
    c.header("Location", `/admin/dead-letters/replays/${op.id}`);
    return c.json(op, 202);
  })
  .post("/admin/dead-letters/purge", async (c) => {
    const { deadLetters, store } = c.get("deps");
    const body = parseOrThrow(purgeSchema, await jsonBody(c));
    oneTarget(body, ["ids", "filter", "all", "olderThanSeconds"]);
    let purged = 0;
    if (body.ids) {
      for (const id of body.ids) if (await deadLetters.remove(id)) purged++;
    } else if (body.olderThanSeconds !== undefined) {
      purged = await deadLetters.purgeMatching({ to: Date.now() - body.olderThanSeconds * 1000 });
    } else {
      purged = await deadLetters.purgeMatching(body.filter ? toQuery(body.filter, store.keys.partitions) : {});
    }
    return c.json({ purged });
  })
  .get("/admin/dead-letters/:id", async (c) => {
    const entry = await c.get("deps").deadLetters.get(c.req.param("id"));
    if (!entry) throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${c.req.param("id").slice(0, 80)}`);
    return c.json(entry);
  })
  .post("/admin/dead-letters/:id/replay", async (c) => {
    const id = c.req.param("id");
    const result = await c.get("deps").deadLetters.replay(id);
    if (result === "not-found") throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
    return c.json({ id, result });
  })
  .delete("/admin/dead-letters/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await c.get("deps").deadLetters.remove(id)))
      throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
    return c.body(null, 204);
  });
