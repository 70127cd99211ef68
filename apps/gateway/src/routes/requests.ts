import { randomBytes } from "node:crypto";
import {
  formatExecutionContext,
  parseFieldSelection,
  parseOrThrow,
  parseRequestQuery,
  QUERY_LIMIT_DEFAULT,
  type RequestDetailsField,
  registrationBodySchema,
  requestQueryParamsSchema,
} from "@ess/contract";
import { EssError } from "@ess/domain";
import { RequestIndex } from "@ess/store";
import { type Context, Hono } from "hono";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import { publicHref, requestDetailsJson, requestHref } from "../details.js";
import type { AppEnv } from "../env.js";
import { methodNotAllowed } from "./method.js";

/** A fresh request handle: 144 random bits, URL-safe. */
export function mintHandle(): string {
  return randomBytes(18).toString("base64url");
}

const REGISTER = "/gateway/v1/requests/:requestId/executions";
const DETAILS = "/ess/rest/scheduler/v1/requests/:requestId";
const QUERY = "/ess/rest/scheduler/v1/requests";

/** Field selection of a read: `fields` / `excludeFields` from the query string. */
function selection(c: Context<AppEnv>): ReadonlySet<RequestDetailsField> | null {
  return parseFieldSelection(c.req.query("fields"), c.req.query("excludeFields"));
}

/** The items of a query carry no history (read one request for it). */
function querySelection(c: Context<AppEnv>): ReadonlySet<RequestDetailsField> {
  const sel = selection(c);
  if (sel?.has("history") && c.req.query("fields") !== undefined) {
    throw new EssError("INVALID_BODY", "fields: history is only on GET /ess/rest/scheduler/v1/requests/{requestId}");
  }
  const out = new Set(sel ?? []);
  if (!sel) for (const f of ALL_FIELDS) out.add(f);
  out.delete("history");
  return out;
}

const ALL_FIELDS = parseFieldSelection(undefined, "history") as ReadonlySet<RequestDetailsField>;

/** The scheduler side: registration (our API) and the ESS request read. */
export const requestRoutes = new Hono<AppEnv>()
  .post(REGISTER, async (c) => {
    const { store, maxBodyBytes } = c.get("deps");
    const requestId = requireRequestId(c.req.param("requestId"));
    // an empty body is allowed: every field is optional
    const hasBody = c.req.header("content-length") !== "0" && c.req.header("content-type") !== undefined;
    let body: ReturnType<typeof registrationBodySchema.parse> = {};
    if (hasBody) {
      requireJsonMediaType(c);
      body = parseOrThrow(registrationBodySchema, await readJson(c, maxBodyBytes));
    }
    const handle = body.requestHandle ?? mintHandle();
    const result = await store.register(requestId, handle, { ...body, metadata: body });
    const out: Record<string, unknown> = {
      requestHandle: handle,
      state: "RUNNING",
      execution: result.execution,
      // what the job passes to checkInCancelling (issue 4)
      requestExecutionContext: formatExecutionContext(requestId, handle),
    };
    if (body.resumed) out.pausedState = result.pausedState;
    c.header("Location", requestHref(c, requestId));
    return c.body(`{"requestId":${requestId},${JSON.stringify(out).slice(1)}`, 201, {
      "content-type": "application/json",
    });
  })
  .all(REGISTER, methodNotAllowed("POST"))
  .get(DETAILS, async (c) => {
    const { store } = c.get("deps");
    const requestId = requireRequestId(c.req.param("requestId"));
    const stored = await store.read(requestId);
    if (!stored) throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    const self = requestHref(c, requestId);
    return c.body(requestDetailsJson(requestId, stored, self, Date.now(), selection(c)), 200, {
      "content-type": "application/json",
    });
  })
  .all(DETAILS, methodNotAllowed("GET"))
  .get(QUERY, async (c) => {
    const { store } = c.get("deps");
    const params = parseOrThrow(requestQueryParamsSchema, c.req.query());
    const query = parseRequestQuery(params.q, params.orderBy);
    const select = querySelection(c);
    const limit = params.limit ?? QUERY_LIMIT_DEFAULT;
    const page = await new RequestIndex(store.redis, store.keys).query(query, { limit, cursor: params.cursor });
    const now = Date.now();
    const items = page.items.map((r) =>
      requestDetailsJson(r.requestId, { fields: r.fields, history: [] }, requestHref(c, r.requestId), now, select),
    );
    const url = new URL(c.req.url);
    const links = [{ rel: "self", href: publicHref(c, `${url.pathname}${url.search}`) }];
    if (page.nextCursor) {
      url.searchParams.set("cursor", page.nextCursor);
      links.push({ rel: "next", href: publicHref(c, `${url.pathname}${url.search}`) });
    }
    const tail = JSON.stringify({ count: items.length, hasMore: page.nextCursor !== null, limit, links });
    return c.body(`{"items":[${items.join(",")}],${tail.slice(1)}`, 200, { "content-type": "application/json" });
  })
  .all(QUERY, methodNotAllowed("GET"));
