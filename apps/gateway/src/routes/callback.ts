import { type API_ROUTES, type CallbackBody, tokenSchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { digest } from "@ess/store";
import { acceptCallback } from "../accept.js";
import type { GatewayDeps } from "../context.js";
import type { RouteHandlers } from "./bind.js";

/** Response header set on a 200 when the request is being cancelled: the job should stop. */
export const CANCEL_HEADER = "X-ESS-Cancel-Requested";

/**
 * The ESS callback once its params and body are valid: the Idempotency-Key rules, then admit and
 * enqueue (acceptCallback). Resolves once Redis has the job, with whether the request is being
 * cancelled (answered with CANCEL_HEADER). The Hono route and the node:http route both call it.
 */
export async function postCallback(
  deps: GatewayDeps,
  requestId: string,
  body: CallbackBody,
  rawKey: string | undefined,
): Promise<boolean> {
  let idempotency: { key: string; fingerprint: string } | undefined;
  if (rawKey !== undefined) {
    if (!tokenSchema.safeParse(rawKey).success) {
      throw new EssError("IDEMPOTENCY_KEY_INVALID", "Idempotency-Key must be 1-255 printable ASCII characters");
    }
    const fingerprint = digest(`${body.status}\n${body.requestHandle}\n${body.statusMessage ?? "\u0000"}`);
    idempotency = { key: rawKey, fingerprint };
  }
  const admit = await acceptCallback(
    deps,
    { requestId, handle: body.requestHandle, status: body.status, message: body.statusMessage },
    idempotency,
  );
  return admit.cancelling;
}

/**
 * The ESS callback: validate, admit and enqueue (postCallback), answer 200 once Redis has the job.
 * The body arrives parsed by the declaration's fast parser (parseCallbackBody).
 */
export const callbackHandlers: RouteHandlers<Pick<typeof API_ROUTES, "postExecutionStatus">> = {
  postExecutionStatus: async (c, { params: { requestId }, body }) => {
    c.set("callbackStatus", body.status);
    if (await postCallback(c.get("deps"), requestId, body, c.req.header("idempotency-key"))) {
      c.header(CANCEL_HEADER, "true");
    }
    return c.body(null, 200);
  },
};
