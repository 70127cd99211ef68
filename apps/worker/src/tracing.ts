import type { CallbackJob, WebhookJob } from "@ess/contract";
import type { Keys } from "@ess/store";
import type { Tracing } from "@ess/telemetry";
import type { AroundBulkReplay } from "./replay.js";
import type { WorkerObserver } from "./worker.js";

/**
 * The ess.apply span of one callback, through the WorkerObserver hook the worker calls around each
 * apply: a child of the gateway span whose traceparent the job carries (so one trace runs from the
 * HTTP request to the state change). Gap checks are the worker's own housekeeping: no span.
 * Attributes: request id, seq, callback status, partition, outcome; never the handle (jobs carry none).
 */
export function applyTracing(t: Tracing, keys: Keys): WorkerObserver {
  const { SpanKind } = t.api;
  return {
    apply(call, work) {
      if (call.mode !== "cb" || typeof call.arg === "number") return work();
      const job = call.arg as CallbackJob;
      return t.span(
        "ess.apply",
        {
          kind: SpanKind.CONSUMER,
          parent: t.contextOf(job.traceparent),
          attributes: {
            "ess.request_id": call.requestId,
            "ess.seq": job.seq,
            "ess.callback.status": job.status,
            "ess.partition": keys.partition(call.requestId),
          },
        },
        async (span) => {
          const res = await work();
          if (res.n > 0) span.setAttribute("ess.drained", res.n);
          return res;
        },
        (res) => res.result,
      );
    },
  };
}

/** The ess.dead_letter.replay_bulk span around each bulk replay the ops queue hands this worker. */
export function bulkReplaySpan(t: Tracing): AroundBulkReplay {
  return (id, run) =>
    t.span(
      "ess.dead_letter.replay_bulk",
      { kind: t.api.SpanKind.CONSUMER, attributes: { "ess.replay.id": id } },
      async (span) => {
        const op = await run();
        if (op) span.setAttribute("ess.replay.replayed", op.replayed);
        return op;
      },
      (op) => op?.state ?? "gone",
    );
}

/** A webhook job's data as far as it is one (the span is made before the payload is checked). */
function webhookData(job: { data: unknown }): Partial<WebhookJob> {
  return typeof job.data === "object" && job.data !== null ? (job.data as Partial<WebhookJob>) : {};
}

/**
 * Wraps one webhook delivery in an ess.webhook.deliver span; the fetch inside it (instrumented)
 * sends its traceparent to the subscriber. Attributes: partition, event, seq, kind, outcome (the HTTP status
 * or the failure); not the URL, whose query may hold the subscriber's token.
 */
export function traceDelivery(
  t: Tracing,
): (p: number, job: { data: unknown }, run: () => Promise<number>) => Promise<number> {
  return (p, job, run) =>
    t.span(
      "ess.webhook.deliver",
      {
        kind: t.api.SpanKind.PRODUCER,
        attributes: {
          "ess.partition": p,
          // the ESS event name inside the CloudEvent body, and where it stands in the request's order
          "ess.webhook.event": (/"event":"([A-Z_]{1,64})"/.exec(webhookData(job).body ?? "")?.[1] ?? "").slice(0, 64),
          "ess.webhook.seq": Number(webhookData(job).seq ?? 0),
          "ess.webhook.kind": String(webhookData(job).kind ?? ""),
        },
      },
      run,
      (status) => String(status),
    );
}
