import { EssError } from "@ess/domain";
import { type DeadLetterReason, isOutOfMemory } from "@ess/store";

/**
 * How the worker treats a failed attempt: retry with backoff, or dead-letter at once. A full Redis
 * (`overload`) is retried with backoff without spending the job's attempts: the callback is good,
 * and however long the memory shortage lasts it must not end in the dead letters.
 */
export type Failure = { kind: "transient" } | { kind: "overload" } | { kind: "permanent"; reason: DeadLetterReason };

/** Redis replies that mean "not now" rather than "never". */
const TRANSIENT_REPLIES = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOSCRIPT|MOVED|ASK)\b/;

/**
 * Classifies a failure once: Redis refusing writes at maxmemory is overload; connection problems
 * and Redis "not now" replies are transient (retried with exponential backoff and jitter);
 * programming errors, script errors and domain errors are permanent (dead-lettered at once, with
 * the reason).
 */
export function classify(err: unknown): Failure {
  if (isOutOfMemory(err)) return { kind: "overload" };
  if (err instanceof EssError) return { kind: "permanent", reason: "permanent-error" };
  if (
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof SyntaxError ||
    err instanceof ReferenceError
  ) {
    return { kind: "permanent", reason: "permanent-error" };
  }
  if (err instanceof Error && err.name === "ReplyError") {
    return TRANSIENT_REPLIES.test(err.message)
      ? { kind: "transient" }
      : { kind: "permanent", reason: "permanent-error" };
  }
  // connection closed/refused/reset, timeouts, anything unknown: worth another attempt
  return { kind: "transient" };
}
