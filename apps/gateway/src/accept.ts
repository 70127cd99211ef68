import type { CallbackJob } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";
import type { AdmitCallback, AdmitResult, Idempotency } from "@ess/store";
import { UNOBSERVED } from "./accept-observer.js";
import { admitBatcher } from "./admit-batch.js";
import type { GatewayDeps } from "./context.js";

/** A callback as the gateway accepts it (executionStatus, or a checkInCancelling as an UPDATE). */
export interface IncomingCallback {
  requestId: string;
  handle: string;
  status: CallbackStatus;
  /** already truncated */
  message?: string | undefined;
}

/**
 * The callback as the admit script takes it, stamped now. Written out field by field, not as
 * `{ ...cb, acceptedAt, traceparent }`: on node 20's V8 a spread copy with fields added costs about
 * 3 µs and gets a hidden class of its own (the literal: under 0.1 µs, one class; bench/spread-cost.ts),
 * and that spread was about a seventh of the gateway's CPU per callback (BENCHMARKS.md, "Seventh
 * pass: the object spread on the callback path").
 */
export function admitted(cb: IncomingCallback, traceparent: string | undefined): AdmitCallback {
  return {
    requestId: cb.requestId,
    handle: cb.handle,
    status: cb.status,
    message: cb.message,
    acceptedAt: Date.now(),
    traceparent,
  };
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
 * Redis has the job. With ADMIT_BATCH_MAX > 1 (and ENQUEUE_MODE "script") the callbacks of one
 * partition reaching this point in one event-loop turn share one script call and one job
 * (admit-batch.ts), each answered on its own; ACK_REPLICAS is then waited for once per batch. ENQUEUE_MODE "script" (default) does both, and writes an Idempotency-Key's final
 * record, in one script and one round trip. "queue" runs the admit script (which leaves the key
 * pending under a lease), then BullMQ's Queue.add, then the final record; a repeat that finds the
 * lease run out (this gateway died or failed in between) resumes the call under its first seq and
 * job id. Either way an error leaves the key as it is: a retry gets the first call's seq, never a new
 * one. If the enqueue fails the seq stays unused (the worker skips the gap after GAP_TIMEOUT_MS).
 */
export async function acceptCallback(
  deps: GatewayDeps,
  cb: IncomingCallback,
  idempotency?: Idempotency,
): Promise<AdmitResult> {
  const batcher = admitBatcher(deps);
  if (batcher) {
    const observe = deps.observe ?? UNOBSERVED;
    return observe.admit(
      { requestId: cb.requestId, status: cb.status },
      (traceparent) => batcher.submit(admitted(cb, traceparent), idempotency),
      true,
    );
  }
  const result = await admitAndEnqueue(deps, cb, idempotency);
  // ACK_REPLICAS: 200 only once the replicas have it
  await deps.replicaAck?.acknowledgeAdmits(deps.store.keys, cb.requestId, [result]);
  return result;
}

async function admitAndEnqueue(
  deps: GatewayDeps,
  cb: IncomingCallback,
  idempotency?: Idempotency,
): Promise<AdmitResult> {
  const { store, queues, enqueueTimeoutMs, enqueue = "script", observe = UNOBSERVED } = deps;
  const call = { requestId: cb.requestId, status: cb.status };
  if (enqueue === "script") {
    // bounded by the gateway connection's command timeout
    return observe.admit(
      call,
      (traceparent) => store.admitAndEnqueue(queues, admitted(cb, traceparent), idempotency),
      true,
    );
  }
  // a live gateway is done with the add within its bound; a repeat past the lease takes over (and should
  // it overlap a slow but live gateway, both add the same job id: one job, or a duplicate the apply drops).
  // Short enough for packages/client's default retries (about 4.6 s through 409s) to outlast it.
  const admit = await observe.admit(
    call,
    () => store.admit(cb.requestId, cb.handle, cb.status, idempotency, enqueueTimeoutMs + 1000),
    false,
  );
  if (admit.kind !== "admitted") return admit;
  const job: CallbackJob = {
    v: 1,
    requestId: cb.requestId,
    seq: admit.seq,
    execution: admit.execution,
    status: cb.status,
    acceptedAt: Date.now(),
  };
  if (cb.message !== undefined) job.message = cb.message;
  await withTimeout(
    observe.enqueue(job, (traceparent) =>
      queues.add(admit.partition, traceparent === undefined ? job : { ...job, traceparent }),
    ),
    enqueueTimeoutMs,
  );
  if (idempotency) {
    await store.completeIdempotency(cb.requestId, idempotency.key, idempotency.fingerprint, admit.seq);
  }
  return admit;
}
