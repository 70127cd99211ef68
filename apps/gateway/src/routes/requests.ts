import { randomBytes } from "node:crypto";
import { type API_ROUTES, formatExecutionContext } from "@ess/contract";
import { EssError } from "@ess/domain";
import { requestDetailsJson, requestHref } from "../details.js";
import type { RouteHandlers } from "./bind.js";

/** A fresh request handle: 144 random bits, URL-safe. */
export function mintHandle(): string {
  return randomBytes(18).toString("base64url");
}

/** The scheduler side: registration (our API) and the ESS request read. */
export const requestHandlers: RouteHandlers<Pick<typeof API_ROUTES, "registerExecution" | "getRequest">> = {
  // an empty body is allowed: every field is optional
  registerExecution: async (c, { params: { requestId }, body = {} }) => {
    const { store } = c.get("deps");
    const handle = body.requestHandle ?? mintHandle();
    const result = await store.register(requestId, handle, body);
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
  getRequest: async (c, { params: { requestId } }) => {
    const { store } = c.get("deps");
    const stored = await store.read(requestId);
    if (!stored) throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    const self = requestHref(c, requestId);
    return c.body(requestDetailsJson(requestId, stored, self), 200, { "content-type": "application/json" });
  },
};
