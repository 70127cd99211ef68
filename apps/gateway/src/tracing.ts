import type { Keys } from "@ess/store";
import type { Tracing } from "@ess/telemetry";
import type { AcceptObserver } from "./accept-observer.js";

/**
 * Spans of the gateway's callback path inside the HTTP request's span, through the AcceptObserver
 * hooks acceptCallback calls: the admit + enqueue script (or the admit script and the enqueue,
 * ENQUEUE_MODE=queue). The enqueued job carries the enqueueing span's traceparent, so the worker's
 * apply joins the callback's trace. Attributes: request id, callback status, partition, seq,
 * outcome; never the handle.
 */
export function acceptTracing(t: Tracing, keys: Keys): AcceptObserver {
  const { SpanKind } = t.api;
  const callbackAttributes = (requestId: string, status: string) => ({
    "ess.request_id": requestId,
    "ess.callback.status": status,
    "ess.partition": keys.partition(requestId),
  });
  return {
    admit(call, work, alsoEnqueues) {
      return t.span(
        alsoEnqueues ? "ess.admit_enqueue" : "ess.admit",
        {
          ...(alsoEnqueues ? { kind: SpanKind.PRODUCER } : {}),
          attributes: callbackAttributes(call.requestId, call.status),
        },
        async (span) => {
          const res = await work(alsoEnqueues ? t.traceparent(span) : undefined);
          if (res.kind === "admitted") span.setAttribute("ess.seq", res.seq);
          return res;
        },
        (res) => res.kind,
      );
    },
    enqueue(job, work) {
      return t.span(
        "ess.enqueue",
        {
          kind: SpanKind.PRODUCER,
          attributes: { ...callbackAttributes(job.requestId, job.status), "ess.seq": job.seq },
        },
        (span) => work(t.traceparent(span)),
        () => "enqueued",
      );
    },
  };
}
