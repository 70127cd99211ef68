import { randomBytes } from "node:crypto";
import { formatExecutionContext, parseOrThrow, registrationBodySchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { Hono } from "hono";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import { requestDetailsJson, requestHref } from "../details.js";
import type { AppEnv } from "../env.js";
import { methodNotAllowed } from "./method.js";

/** A fresh request handle: 144 random bits, URL-safe. */
export function mintHandle(): string {
  return randomBytes(18).toString("base64url");
}

const REGISTER = "/gateway/v1/requests/:requestId/executions";
const DETAILS = "/ess/rest/scheduler/v1/requests/:requestId";

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
    const result = await store.register(requestId, handle, body);
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
    return c.body(requestDetailsJson(requestId, stored, self), 200, { "content-type": "application/json" });
  })
  .all(DETAILS, methodNotAllowed("GET"));
