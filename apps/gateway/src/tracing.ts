import type { CallbackJob } from "@ess/contract";
import type { CallbackQueues, DeadLetters, RequestStore } from "@ess/store";
import { type Tracing, traceReplays } from "@ess/telemetry";

/**
 * Spans of the gateway's own work inside the HTTP request's span: the admit + enqueue script (or the
 * admit script and the enqueue, ENQUEUE_MODE=queue) and dead-letter replays. The enqueued job carries
 * the admit span's traceparent, so the worker's apply joins the callback's trace. Installed by
 * main.ts only when tracing is on, by wrapping the calls once; the route code stays as it is.
 * Attributes: request id, callback status, partition, seq, outcome; never the handle.
 */
export function traceGateway(
  t: Tracing,
  deps: { store: RequestStore; queues: CallbackQueues; deadLetters: DeadLetters },
): void {
  const { store, queues, deadLetters } = deps;
  const { SpanKind } = t.api;
  const admitted = (r: Awaited<ReturnType<RequestStore["admit"]>>) => r.kind;
  const callbackAttributes = (requestId: string, status: string) => ({
    "ess.request_id": requestId,
    "ess.callback.status": status,
    "ess.partition": store.keys.partition(requestId),
  });

  const admitAndEnqueue = store.admitAndEnqueue.bind(store);
  store.admitAndEnqueue = (q, cb, idempotency) =>
    t.span(
      "ess.admit_enqueue",
      { kind: SpanKind.PRODUCER, attributes: callbackAttributes(cb.requestId, cb.status) },
      async (span) => {
        const res = await admitAndEnqueue(q, { ...cb, traceparent: t.traceparent(span) }, idempotency);
        if (res.kind === "admitted") span.setAttribute("ess.seq", res.seq);
        return res;
      },
      admitted,
    );

  const admit = store.admit.bind(store);
  store.admit = (requestId, handle, status, idempotency) =>
    t.span(
      "ess.admit",
      { attributes: callbackAttributes(requestId, status) },
      async (span) => {
        const res = await admit(requestId, handle, status, idempotency);
        if (res.kind === "admitted") span.setAttribute("ess.seq", res.seq);
        return res;
      },
      admitted,
    );

  const add = queues.add.bind(queues);
  queues.add = (partition: number, job: CallbackJob) =>
    t.span(
      "ess.enqueue",
      {
        kind: SpanKind.PRODUCER,
        attributes: { ...callbackAttributes(job.requestId, job.status), "ess.seq": job.seq },
      },
      (span) => add(partition, { ...job, traceparent: t.traceparent(span) }),
      () => "enqueued",
    );

  traceReplays(t, deadLetters);
}
