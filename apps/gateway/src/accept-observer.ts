import type { CallbackJob } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";
import type { AdmitResult } from "@ess/store";

/** The callback being accepted, as the hooks see it (never its handle). */
export interface AcceptCall {
  requestId: string;
  status: CallbackStatus;
}

/** A step's work; `traceparent` (W3C) is carried by the enqueued job when given. */
export type AcceptWork<R> = (traceparent?: string) => Promise<R>;

/**
 * Hooks around the steps of accepting a callback, called by acceptCallback where the work happens:
 * the metrics time them (accept-metrics.ts) and the tracer opens a span around each (tracing.ts),
 * handing the span's traceparent to the work so that the worker's apply joins the trace. A hook runs
 * `work` once and returns (or throws) what it did.
 */
export interface AcceptObserver {
  /** The admit script; `alsoEnqueues` when the same script adds the job (ENQUEUE_MODE=script). */
  admit(call: AcceptCall, work: AcceptWork<AdmitResult>, alsoEnqueues: boolean): Promise<AdmitResult>;
  /** BullMQ's add of an admitted callback (ENQUEUE_MODE=queue). */
  enqueue(job: CallbackJob, work: AcceptWork<void>): Promise<void>;
  /** An admit batch sent as one script call, with this many callbacks (admit batching only). */
  batch?(callbacks: number): void;
}

/** Runs the work unobserved. */
export const UNOBSERVED: AcceptObserver = {
  admit: (_call, work) => work(),
  enqueue: (_job, work) => work(),
};

/**
 * One observer made of several, the first outermost; a traceparent handed down by an outer one
 * reaches the work unless an inner one hands its own.
 */
export function observeAll(...observers: (AcceptObserver | undefined)[]): AcceptObserver {
  const list = observers.filter((o): o is AcceptObserver => o !== undefined);
  if (list.length === 1) return list[0] as AcceptObserver;
  return {
    admit(call, work, alsoEnqueues) {
      const run = list.reduceRight<AcceptWork<AdmitResult>>(
        (inner, o) => (tp) => o.admit(call, (own) => inner(own ?? tp), alsoEnqueues),
        work,
      );
      return run();
    },
    enqueue(job, work) {
      const run = list.reduceRight<AcceptWork<void>>(
        (inner, o) => (tp) => o.enqueue(job, (own) => inner(own ?? tp)),
        work,
      );
      return run();
    },
    batch(callbacks) {
      for (const o of list) o.batch?.(callbacks);
    },
  };
}
