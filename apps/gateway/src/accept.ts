import type { CallbackJob } from "@ess/contract";
import { type CallbackStatus, EssError } from "@ess/domain";
import type { AdmitResult } from "@ess/store";
import type { GatewayDeps } from "./env.js";

/** A callback as the gateway accepts it (executionStatus, or a checkInCancelling as an UPDATE). */
export interface IncomingCallback {
  requestId: string;
  handle: string;
  status: CallbackStatus;
  /** already truncated */
  message?: string | undefined;
}

/** An Idempotency-Key and the fingerprint of the callback's content. */
export interface Idempotency {
  key: string;
  fingerprint: string;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`enqueue timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Admits a callback (404/403 and Idempotency-Key rules, next seq) and enqueues it; resolves only once
 * Redis has the job. ENQUEUE_MODE "script" (default) does both in one script and one round trip;
 * "queue" runs the admit script, then BullMQ's Queue.add. If the enqueue fails the seq stays unused
 * (the worker skips the gap after GAP_TIMEOUT_MS) and an in-flight Idempotency-Key is forgotten.
 */
export async function acceptCallback(
  deps: GatewayDeps,
  cb: IncomingCallback,
  idempotency?: Idempotency,
): Promise<AdmitResult> {
  const { store, queues, enqueueTimeoutMs, enqueue = "script" } = deps;
  let admit: AdmitResult;
  try {
    if (enqueue === "script") {
      // bounded by the gateway connection's command timeout
      admit = await store.admitAndEnqueue(queues, { ...cb, acceptedAt: Date.now() }, idempotency);
    } else {
      admit = await store.admit(cb.requestId, cb.handle, cb.status, idempotency);
      if (admit.kind === "admitted") {
        const job: CallbackJob = {
          v: 1,
          requestId: cb.requestId,
          seq: admit.seq,
          execution: admit.execution,
          status: cb.status,
          acceptedAt: Date.now(),
        };
        if (cb.message !== undefined) job.message = cb.message;
        await withTimeout(queues.add(admit.partition, job), enqueueTimeoutMs);
      }
    }
  } catch (err) {
    if (idempotency && !(err instanceof EssError)) {
      await store.abandonIdempotency(cb.requestId, idempotency.key).catch(() => {});
    }
    throw err;
  }
  if (idempotency && admit.kind === "admitted") {
    await store.completeIdempotency(cb.requestId, idempotency.key, idempotency.fingerprint, admit.seq);
  }
  return admit;
}
