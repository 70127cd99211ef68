import { CONSOLE_ACTION_ROLES, declareRoute } from "@ess/contract";
import { EssError } from "@ess/domain";
import { DEAD_LETTER_REASONS, type DeadLetterQuery } from "@ess/store";
import { z } from "zod";
import { requireRequestId } from "../body.js";
import { operatorActions, operatorFrom } from "../operator/actions.js";
import type { RouteHandlers } from "./bind.js";

const time = z.union([z.number().int().min(0), z.iso.datetime().transform((s) => Date.parse(s))]);

/** Dead-letter filters, as query parameters (strings) or in a JSON body (also the bulk actions' filter). */
export const filterSchema = z.strictObject({
  partition: z.coerce.number().int().min(0).optional(),
  requestId: z.string().optional(),
  status: z.string().min(1).max(40).optional(),
  reason: z.enum(DEAD_LETTER_REASONS).optional(),
  from: z.union([time, z.string().regex(/^\d+$/).transform(Number)]).optional(),
  to: z.union([time, z.string().regex(/^\d+$/).transform(Number)]).optional(),
});

export function toQuery(f: z.output<typeof filterSchema>, partitions: number): DeadLetterQuery {
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

const opId = z.object({ opId: z.string() });
const entryId = z.object({ id: z.string() });
const adminOnly = { roles: ["admin"], hide: true } as const;
const ok = (description: string) => ({ 200: { description } });

/**
 * Dead-letter operations, on the admin listener (admin only): list, show, replay, purge, bulk-replay
 * progress. Not in the callback listener's OpenAPI document.
 */
export const DEAD_LETTER_ROUTES = {
  listDeadLetters: declareRoute({
    ...adminOnly,
    method: "get",
    path: "/admin/dead-letters",
    operationId: "listDeadLetters",
    operation: "deadLetters",
    summary: "Dead letters matching a filter, a page at a time",
    request: { query: listSchema },
    responses: ok("A page of dead letters"),
  }),
  getReplay: declareRoute({
    ...adminOnly,
    method: "get",
    path: "/admin/dead-letters/replays/{opId}",
    operationId: "getReplay",
    operation: "deadLetterReplay",
    summary: "Progress of a bulk replay",
    request: { params: opId },
    responses: ok("The replay operation"),
  }),
  cancelReplay: declareRoute({
    ...adminOnly,
    method: "post",
    path: "/admin/dead-letters/replays/{opId}/cancel",
    operationId: "cancelReplay",
    operation: "deadLetterReplayCancel",
    summary: "Stop a bulk replay",
    request: { params: opId },
    responses: ok("The replay operation"),
  }),
  replayDeadLetters: declareRoute({
    ...adminOnly,
    method: "post",
    path: "/admin/dead-letters/replay",
    operationId: "replayDeadLetters",
    operation: "deadLettersReplay",
    summary: "Replay a list of dead letters, or start a bulk replay of a filter",
    request: { body: { required: true, content: { "application/json": { schema: replaySchema } } } },
    responses: { ...ok("Per-id results"), 202: { description: "Bulk replay started; Location points at it" } },
  }),
  purgeDeadLetters: declareRoute({
    ...adminOnly,
    method: "post",
    path: "/admin/dead-letters/purge",
    operationId: "purgeDeadLetters",
    operation: "deadLettersPurge",
    summary: "Remove dead letters by id, filter or age",
    request: { body: { required: true, content: { "application/json": { schema: purgeSchema } } } },
    responses: ok("How many were removed"),
  }),
  getDeadLetter: declareRoute({
    ...adminOnly,
    method: "get",
    path: "/admin/dead-letters/{id}",
    operationId: "getDeadLetter",
    operation: "deadLetter",
    summary: "One dead letter",
    request: { params: entryId },
    responses: ok("The dead letter"),
  }),
  replayDeadLetter: declareRoute({
    roles: CONSOLE_ACTION_ROLES,
    hide: true,
    method: "post",
    path: "/admin/dead-letters/{id}/replay",
    operationId: "replayDeadLetter",
    operation: "deadLetterReplayOne",
    summary: "Replay one dead letter, with a reason (an admin may leave the body out)",
    request: {
      params: entryId,
      body: {
        required: false,
        content: { "application/json": { schema: z.strictObject({ reason: z.string().max(2000).optional() }) } },
      },
    },
    responses: ok("The result"),
  }),
  deleteDeadLetter: declareRoute({
    ...adminOnly,
    method: "delete",
    path: "/admin/dead-letters/{id}",
    operationId: "deleteDeadLetter",
    operation: "deadLetter",
    summary: "Remove one dead letter",
    request: { params: entryId },
    responses: { 204: { description: "Removed" } },
  }),
} as const;

/** The dead-letter handlers, bound to DEAD_LETTER_ROUTES (bodies read up to 8 × MAX_BODY_BYTES: id lists). */
export const deadLetterHandlers: RouteHandlers<typeof DEAD_LETTER_ROUTES> = {
  listDeadLetters: async (c, { query }) => {
    const { deadLetters, store } = c.get("deps");
    const page = await deadLetters.list(toQuery(query, store.keys.partitions), {
      limit: query.limit ?? 100,
      cursor: query.cursor,
    });
    return c.json({ ...page, count: page.items.length });
  },
  getReplay: async (c, { params }) => {
    const op = await c.get("deps").deadLetters.getReplay(params.opId);
    if (!op) throw new EssError("ROUTE_NOT_FOUND", "no such replay operation");
    return c.json(op);
  },
  cancelReplay: async (c, { params }) => {
    const deps = c.get("deps");
    const op = await deps.deadLetters.cancelReplay(params.opId);
    if (!op) throw new EssError("ROUTE_NOT_FOUND", "no such replay operation");
    await operatorActions(deps).recordAdminCall(
      c.get("principal"),
      "deadLetters.replayCancel",
      `replay/${op.id}`,
      "succeeded",
      {
        filter: op.filter,
        count: op.replayed,
      },
    );
    return c.json(op);
  },
  replayDeadLetters: async (c, { body }) => {
    const { deadLetters, queues, store, replayRate } = c.get("deps");
    oneTarget(body, ["ids", "filter", "all"]);
    const audit = operatorActions(c.get("deps"));
    if (body.ids) {
      const results: Record<string, string> = {};
      for (const id of body.ids) results[id] = await deadLetters.replay(id);
      const replayed = Object.values(results).filter((r) => r === "replayed").length;
      await audit.recordAdminCall(c.get("principal"), "deadLetters.replay", "dead-letters/ids", "succeeded", {
        count: replayed,
        detail: `${replayed} of ${body.ids.length} replayed`,
      });
      return c.json({ results });
    }
    const filter = body.filter ? toQuery(body.filter, store.keys.partitions) : {};
    const op = await deadLetters.startReplay(filter, body.rate ?? replayRate, queues.ops());
    await audit.recordAdminCall(c.get("principal"), "deadLetters.replayStart", `replay/${op.id}`, "succeeded", {
      filter: op.filter,
      count: op.total,
    });
    c.header("Location", `/admin/dead-letters/replays/${op.id}`);
    return c.json(op, 202);
  },
  purgeDeadLetters: async (c, { body }) => {
    const { deadLetters, store } = c.get("deps");
    oneTarget(body, ["ids", "filter", "all", "olderThanSeconds"]);
    let purged = 0;
    if (body.ids) {
      for (const id of body.ids) if (await deadLetters.remove(id)) purged++;
    } else if (body.olderThanSeconds !== undefined) {
      purged = await deadLetters.purgeMatching({ to: Date.now() - body.olderThanSeconds * 1000 });
    } else {
      purged = await deadLetters.purgeMatching(body.filter ? toQuery(body.filter, store.keys.partitions) : {});
    }
    await operatorActions(c.get("deps")).recordAdminCall(
      c.get("principal"),
      "deadLetters.purge",
      "dead-letters",
      "succeeded",
      {
        count: purged,
        ...(body.filter ? { filter: toQuery(body.filter, store.keys.partitions) } : {}),
        ...(body.olderThanSeconds !== undefined ? { detail: `older than ${body.olderThanSeconds} s` } : {}),
      },
    );
    return c.json({ purged });
  },
  getDeadLetter: async (c, { params }) => {
    const entry = await c.get("deps").deadLetters.get(params.id);
    if (!entry) throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${params.id.slice(0, 80)}`);
    return c.json(entry);
  },
  replayDeadLetter: async (c, { params, body }) => {
    const { id } = params;
    const deps = c.get("deps");
    const op = operatorFrom(c);
    // with a reason (or from a non-admin): the console's audited action; an admin's call without a body
    // keeps the older API's answer, audited with no reason
    if (body?.reason !== undefined || op.role !== "admin") {
      const done = await operatorActions(deps).replayDeadLetter(op, id, body?.reason ?? "");
      return c.json(done);
    }
    const result = await deps.deadLetters.replay(id);
    await operatorActions(deps).recordAdminCall(
      c.get("principal"),
      "deadLetter.replay",
      `dead-letter/${id}`,
      result === "replayed" ? "succeeded" : "refused",
      result === "replayed" ? { count: 1 } : { detail: "no such dead letter" },
    );
    if (result === "not-found") throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
    return c.json({ id, result });
  },
  deleteDeadLetter: async (c, { params }) => {
    const { id } = params;
    const deps = c.get("deps");
    const removed = await deps.deadLetters.remove(id);
    await operatorActions(deps).recordAdminCall(
      c.get("principal"),
      "deadLetter.purge",
      `dead-letter/${id}`,
      removed ? "succeeded" : "refused",
      removed ? { count: 1 } : { detail: "no such dead letter" },
    );
    if (!removed) throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
    return c.body(null, 204);
  },
};
