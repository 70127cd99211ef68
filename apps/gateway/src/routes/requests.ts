import { randomBytes } from "node:crypto";
import {
  type API_ROUTES,
  formatExecutionContext,
  parseFieldSelection,
  parseRequestQuery,
  QUERY_LIMIT_DEFAULT,
  type RequestDetailsField,
} from "@ess/contract";
import { EssError } from "@ess/domain";
import { RequestIndex } from "@ess/store";
import { publicHref, requestDetailsJson, requestHref } from "../details.js";
import type { RouteHandlers } from "./bind.js";

/** A fresh request handle: 144 random bits, URL-safe. */
export function mintHandle(): string {
  return randomBytes(18).toString("base64url");
}

/** Every field but history: the items of a query carry no history (read one request for it). */
const QUERY_FIELDS = parseFieldSelection(undefined, "history") as ReadonlySet<RequestDetailsField>;

/** The fields of a query's items: the selection, without history. */
function querySelection(fields: string | undefined, excludeFields: string | undefined): Set<RequestDetailsField> {
  const sel = parseFieldSelection(fields, excludeFields);
  if (sel?.has("history") && fields !== undefined) {
    throw new EssError("INVALID_BODY", "fields: history is only on GET /ess/rest/scheduler/v1/requests/{requestId}");
  }
  const out = new Set(sel ?? QUERY_FIELDS);
  out.delete("history");
  return out;
}

/** The scheduler side: registration (our API), the ESS request read and the ESS request query. */
export const requestHandlers: RouteHandlers<
  Pick<typeof API_ROUTES, "registerExecution" | "getRequest" | "queryRequests">
> = {
  // an empty body is allowed: every field is optional
  registerExecution: async (c, { params: { requestId }, body = {} }) => {
    const { store } = c.get("deps");
    const handle = body.requestHandle ?? mintHandle();
    const result = await store.register(requestId, handle, { ...body, metadata: body });
    const out: Record<string, unknown> = {
      requestHandle: handle,
      state: "RUNNING",
      execution: result.execution,
      // what the job passes to checkInCancelling
      requestExecutionContext: formatExecutionContext(requestId, handle),
    };
    if (body.resumed) out.pausedState = result.pausedState;
    c.header("Location", requestHref(c, requestId));
    return c.body(`{"requestId":${requestId},${JSON.stringify(out).slice(1)}`, 201, {
      "content-type": "application/json",
    });
  },
  getRequest: async (c, { params: { requestId }, query }) => {
    const { store } = c.get("deps");
    const select = parseFieldSelection(query.fields, query.excludeFields);
    const stored = await store.read(requestId);
    if (!stored) throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    const self = requestHref(c, requestId);
    return c.body(requestDetailsJson(requestId, stored, self, Date.now(), select), 200, {
      "content-type": "application/json",
    });
  },
  queryRequests: async (c, { query: params }) => {
    const { store } = c.get("deps");
    const query = parseRequestQuery(params.q, params.orderBy);
    const select = querySelection(params.fields, params.excludeFields);
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
  },
};
