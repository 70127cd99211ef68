import type { AdmitResult } from "@ess/store";

/**
 * Hooks around the steps of accepting a callback, called by acceptCallback where the work happens:
 * the metrics time them (accept-metrics.ts), and a tracer may open a span around each. A hook runs
 * `work` once and returns (or throws) what it did.
 */
export interface AcceptObserver {
  /** The admit script; `alsoEnqueues` when the same script adds the job (ENQUEUE_MODE=script). */
  admit(work: () => Promise<AdmitResult>, alsoEnqueues: boolean): Promise<AdmitResult>;
  /** BullMQ's add of an admitted callback (ENQUEUE_MODE=queue). */
  enqueue(work: () => Promise<void>): Promise<void>;
}

/** Runs the work unobserved. */
export const UNOBSERVED: AcceptObserver = {
  admit: (work) => work(),
  enqueue: (work) => work(),
};
