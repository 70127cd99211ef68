import { type CallbackJob, parseCallbackBody, tokenSchema } from "@ess/contract";
import { EssError } from "@ess/domain";
import { type AdmitResult, digest } from "@ess/store";
import { Hono } from "hono";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv } from "../env.js";
import { methodNotAllowed } from "./method.js";

/** Response header set on a 200 when the request is being cancelled: the job should stop. */
export const CANCEL_HEADER = "X-ESS-Cancel-Requested";

const PATH = "/ess/rest/scheduler/v1/requests/:requestId/executionStatus";

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`enqueue timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The ESS callback: validate, admit and enqueue, answer 200 once Redis has the job. With
 * `enqueue: "script"` (default) admit and enqueue are one script and one round trip; "queue" runs the
 * admit script and then BullMQ's Queue.add (two round trips).
 */
export const callbackRoutes = new Hono<AppEnv>()
  .post(PATH, async (c) => {
    const { store, queues, maxBodyBytes, enqueueTimeoutMs, enqueue = "script" } = c.get("deps");
    const requestId = requireRequestId(c.req.param("requestId"));
    requireJsonMediaType(c);
    const body = parseCallbackBody(await readJson(c, maxBodyBytes));

    const rawKey = c.req.header("idempotency-key");
    let idempotency: { key: string; fingerprint: string } | undefined;
    if (rawKey !== undefined) {
      if (!tokenSchema.safeParse(rawKey).success) {
        throw new EssError("IDEMPOTENCY_KEY_INVALID", "Idempotency-Key must be 1-255 printable ASCII characters");
      }
      const fingerprint = digest(`${body.status}\n${body.requestHandle}\n${body.statusMessage ?? "\u0000"}`);
      idempotency = { key: rawKey, fingerprint };
    }

    let admit: AdmitResult;
    if (enqueue === "script") {
      // one round trip: admit-2 and BullMQ's addStandardJob in one script (admit-enqueue-11); bounded
      // by the gateway connection's command timeout
      try {
        admit = await store.admitAndEnqueue(
          queues,
          {
            requestId,
            handle: body.requestHandle,
            status: body.status,
            message: body.statusMessage,
            acceptedAt: Date.now(),
          },
          idempotency,
        );
      } catch (err) {
        if (idempotency && !(err instanceof EssError)) {
          await store.abandonIdempotency(requestId, idempotency.key).catch(() => {});
        }
        throw err;
      }
      if (idempotency && admit.kind === "admitted") {
        await store.completeIdempotency(requestId, idempotency.key, idempotency.fingerprint, admit.seq);
      }
    } else {
      admit = await store.admit(requestId, body.requestHandle, body.status, idempotency);
      if (admit.kind === "admitted") {
        const job: CallbackJob = {
          v: 1,
          requestId,
          seq: admit.seq,
          execution: admit.execution,
          status: body.status,
          acceptedAt: Date.now(),
        };
        if (body.statusMessage !== undefined) job.message = body.statusMessage;
        try {
          await withTimeout(queues.add(admit.partition, job), enqueueTimeoutMs);
        } catch (err) {
          // the seq stays unused: the worker skips the gap after GAP_TIMEOUT_MS
          if (idempotency) await store.abandonIdempotency(requestId, idempotency.key).catch(() => {});
          throw err;
        }
        if (idempotency)
          await store.completeIdempotency(requestId, idempotency.key, idempotency.fingerprint, admit.seq);
      }
    }
    if (admit.cancelling) c.header(CANCEL_HEADER, "true");
    return c.body(null, 200);
  })
  .all(PATH, methodNotAllowed("POST"));
