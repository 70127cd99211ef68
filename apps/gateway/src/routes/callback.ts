import { parseCallbackBody, tokenSchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { digest } from "@ess/store";
import { Hono } from "hono";
import { acceptCallback } from "../accept.js";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv } from "../env.js";
import { methodNotAllowed } from "./method.js";

/** Response header set on a 200 when the request is being cancelled: the job should stop. */
export const CANCEL_HEADER = "X-ESS-Cancel-Requested";

const PATH = "/ess/rest/scheduler/v1/requests/:requestId/executionStatus";

/**
 * The ESS callback: validate, admit and enqueue (acceptCallback), answer 200 once Redis has the job.
 */
export const callbackRoutes = new Hono<AppEnv>()
  .post(PATH, async (c) => {
    const { maxBodyBytes } = c.get("deps");
    const requestId = requireRequestId(c.req.param("requestId"));
    requireJsonMediaType(c);
    const body = parseCallbackBody(await readJson(c, maxBodyBytes));
    c.set("callbackStatus", body.status);

    const rawKey = c.req.header("idempotency-key");
    let idempotency: { key: string; fingerprint: string } | undefined;
    if (rawKey !== undefined) {
      if (!tokenSchema.safeParse(rawKey).success) {
        throw new EssError("IDEMPOTENCY_KEY_INVALID", "Idempotency-Key must be 1-255 printable ASCII characters");
      }
      const fingerprint = digest(`${body.status}\n${body.requestHandle}\n${body.statusMessage ?? "\u0000"}`);
      idempotency = { key: rawKey, fingerprint };
    }

    const admit = await acceptCallback(
      c.get("deps"),
      { requestId, handle: body.requestHandle, status: body.status, message: body.statusMessage },
      idempotency,
    );
    if (admit.cancelling) c.header(CANCEL_HEADER, "true");
    return c.body(null, 200);
  })
  .all(PATH, methodNotAllowed("POST"));
