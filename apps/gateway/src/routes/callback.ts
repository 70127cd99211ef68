import { type API_ROUTES, tokenSchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { digest } from "@ess/store";
import { acceptCallback } from "../accept.js";
import type { RouteHandlers } from "./bind.js";

/** Response header set on a 200 when the request is being cancelled: the job should stop. */
export const CANCEL_HEADER = "X-ESS-Cancel-Requested";

/**
 * The ESS callback: validate, admit and enqueue (acceptCallback), answer 200 once Redis has the job.
 * The body arrives parsed by the declaration's fast parser (parseCallbackBody).
 */
export const callbackHandlers: RouteHandlers<Pick<typeof API_ROUTES, "postExecutionStatus">> = {
  postExecutionStatus: async (c, { params: { requestId }, body }) => {
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
  },
};
