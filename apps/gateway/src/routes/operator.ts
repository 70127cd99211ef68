import { CONSOLE_ACTION_ROLES, CONSOLE_READ_ROLES, declareRoute, requestIdSchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { BULK_KINDS } from "@ess/store";
import { z } from "zod";
import { operatorActions, operatorFrom, REQUEST_ACTIONS } from "../operator/actions.js";
import type { RouteHandlers } from "./bind.js";
import { filterSchema, toQuery } from "./dead-letters.js";

const json = <S extends z.ZodType>(schema: S) => ({
  required: true as const,
  content: { "application/json": { schema } },
});
const ok = (description: string) => ({ 200: { description } });
const read = { roles: CONSOLE_READ_ROLES, hide: true } as const;
const act = { roles: CONSOLE_ACTION_ROLES, hide: true } as const;

/** A reason: required by the service layer (a missing one is answered 400 there, with the rule's message). */
const reasonBody = z.strictObject({ reason: z.string().max(2000).optional() });
const bulkId = z.object({ id: z.string().max(64) });

const auditQuery = z.strictObject({
  cursor: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
  actor: z.string().max(200).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(300).optional(),
});

/**
 * The operator console's API on the admin listener: the audit log, bulk dead-letter actions
 * (estimate → confirm with the typed count → progress → results, or abort), and single actions on
 * requests and dead letters, each with a reason. A path's roles let viewers read and operators act;
 * the service layer refuses what the caller's console role does not cover (bulk actions and purges
 * need admin) and audits it.
 */
export const OPERATOR_ROUTES = {
  listAudit: declareRoute({
    ...read,
    method: "get",
    path: "/admin/audit",
    operationId: "listAudit",
    operation: "audit",
    summary: "The operator audit log, newest first, filtered by actor, action or target, a page at a time",
    request: { query: auditQuery },
    responses: ok("A page of audit entries; `next` is the cursor of the following page"),
  }),
  listBulkActions: declareRoute({
    ...read,
    method: "get",
    path: "/admin/actions",
    operationId: "listBulkActions",
    operation: "bulkActions",
    summary: "Bulk dead-letter actions, newest first",
    responses: ok("The bulk actions"),
  }),
  createBulkAction: declareRoute({
    ...read,
    method: "post",
    path: "/admin/actions",
    operationId: "createBulkAction",
    operation: "bulkActions",
    summary:
      "Create a bulk replay or purge of a dead-letter filter (admin): the server snapshots the filter and estimates the count",
    request: { body: json(z.strictObject({ kind: z.enum(BULK_KINDS), filter: filterSchema.default({}) })) },
    responses: { 201: { description: "Created in state estimated; Location points at it" } },
  }),
  getBulkAction: declareRoute({
    ...read,
    method: "get",
    path: "/admin/actions/{id}",
    operationId: "getBulkAction",
    operation: "bulkAction",
    summary: "One bulk action: its filter snapshot, estimate, state, progress and results",
    request: { params: bulkId },
    responses: ok("The bulk action"),
  }),
  confirmBulkAction: declareRoute({
    ...read,
    method: "post",
    path: "/admin/actions/{id}/confirm",
    operationId: "confirmBulkAction",
    operation: "bulkActionConfirm",
    summary: "Confirm a bulk action with the count it covers, typed by the operator, and a reason (admin)",
    request: {
      params: bulkId,
      body: json(z.strictObject({ count: z.number().int().min(0), reason: z.string().max(2000).optional() })),
    },
    responses: ok("The bulk action, now running"),
  }),
  abortBulkAction: declareRoute({
    ...read,
    method: "post",
    path: "/admin/actions/{id}/abort",
    operationId: "abortBulkAction",
    operation: "bulkActionAbort",
    summary: "Abort a bulk action (admin), with a reason",
    request: { params: bulkId, body: json(reasonBody) },
    responses: ok("The bulk action, aborting or aborted"),
  }),
  requestActions: declareRoute({
    ...read,
    method: "get",
    path: "/admin/requests/{requestId}/actions",
    operationId: "requestActions",
    operation: "requestActions",
    summary: "The console actions valid on a request in its current state",
    request: { params: z.object({ requestId: requestIdSchema }) },
    responses: ok("The valid actions"),
  }),
  requestAction: declareRoute({
    ...act,
    method: "post",
    path: "/admin/requests/{requestId}/actions/{action}",
    operationId: "requestAction",
    operation: "requestAction",
    summary: "Cancel, forceCancel, re-arm a request or replay its dead letters, with a reason",
    request: {
      params: z.object({ requestId: requestIdSchema, action: z.enum(REQUEST_ACTIONS) }),
      body: json(reasonBody),
    },
    responses: ok("What the action did (a re-arm: the new handle)"),
  }),
  purgeDeadLetterWithReason: declareRoute({
    ...act,
    method: "post",
    path: "/admin/dead-letters/{id}/purge",
    operationId: "purgeDeadLetterWithReason",
    operation: "deadLetterPurgeOne",
    summary: "Remove one dead letter, with a reason (admin)",
    request: { params: z.object({ id: z.string().max(300) }), body: json(reasonBody) },
    responses: ok("Purged"),
  }),
} as const;

/** The handlers of OPERATOR_ROUTES, over the service layer. */
export const operatorHandlers: RouteHandlers<typeof OPERATOR_ROUTES> = {
  listAudit: async (c, { query }) => c.json(await operatorActions(c.get("deps")).listAudit(query)),
  listBulkActions: async (c) => c.json({ items: await operatorActions(c.get("deps")).listBulk() }),
  createBulkAction: async (c, { body }) => {
    const deps = c.get("deps");
    const filter = toQuery(body.filter, deps.store.keys.partitions);
    const action = await operatorActions(deps).createBulk(operatorFrom(c), body.kind, filter);
    c.header("Location", `/admin/actions/${action.id}`);
    return c.json(action, 201);
  },
  getBulkAction: async (c, { params }) => {
    const action = await operatorActions(c.get("deps")).getBulk(params.id);
    if (!action) throw new EssError("ROUTE_NOT_FOUND", `no bulk action ${params.id.slice(0, 40)}`);
    return c.json(action);
  },
  confirmBulkAction: async (c, { params, body }) =>
    c.json(await operatorActions(c.get("deps")).confirmBulk(operatorFrom(c), params.id, body.count, body.reason ?? "")),
  abortBulkAction: async (c, { params, body }) =>
    c.json(await operatorActions(c.get("deps")).abortBulk(operatorFrom(c), params.id, body.reason ?? "")),
  requestActions: async (c, { params }) => {
    const states = await operatorActions(c.get("deps")).actionStates(params.requestId);
    return c.json({
      requestId: params.requestId,
      actions: states.filter((a) => a.valid).map((a) => a.action),
      states,
    });
  },
  requestAction: async (c, { params, body }) => {
    const actions = operatorActions(c.get("deps"));
    const op = operatorFrom(c);
    const reason = body.reason ?? "";
    const { requestId } = params;
    switch (params.action) {
      case "cancel":
        return c.json(await actions.cancel(op, requestId, reason));
      case "forceCancel":
        return c.json(await actions.forceCancel(op, requestId, reason));
      case "rearm":
        return c.json(await actions.rearm(op, requestId, reason));
      case "replayDeadLetters":
        return c.json(await actions.replayRequestDeadLetters(op, requestId, reason));
    }
  },
  purgeDeadLetterWithReason: async (c, { params, body }) =>
    c.json(await operatorActions(c.get("deps")).purgeDeadLetter(operatorFrom(c), params.id, body.reason ?? "")),
};
