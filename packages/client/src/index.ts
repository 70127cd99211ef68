import { randomUUID } from "node:crypto";
import { formatExecutionContext } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";

/** Response header on a 200 while the request is being cancelled (the gateway's CANCEL_HEADER). */
export const CANCEL_REQUESTED_HEADER = "x-ess-cancel-requested";

export interface EssJobClientOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  requestId: string | number;
  /** The handle the scheduler gave this execution. */
  requestHandle: string;
  /** Attempts per call on network errors, 409 (in flight), 429, 5xx. Default 5. */
  attempts?: number;
  /** First backoff between attempts in ms, doubled each time (capped at 5 s). Default 200. */
  backoffMs?: number;
  /** Per-attempt timeout in ms. Default 10000. */
  timeoutMs?: number;
  /** Extra headers on every call (e.g. Authorization). */
  headers?: Record<string, string>;
  /** fetch to use (tests, proxies); the global one by default. */
  fetch?: typeof fetch;
}

/** What a successful executionStatus call tells the job. */
export interface StatusReport {
  /** The scheduler asked to cancel: stop, clean up, report CANCEL (or a terminal status). */
  cancelRequested: boolean;
}

/** A call the gateway refused (4xx other than retryable ones), or that kept failing. */
export class EssClientError extends Error {
  override name = "EssClientError";
  constructor(
    message: string,
    /** HTTP status, or 0 when no answer came */
    readonly status: number,
    /** SimpleExceptionDetail errorCode, when the gateway sent one */
    readonly errorCode?: string,
  ) {
    super(message);
  }
}

const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/**
 * The job side of the ESS callback protocol. Every call is retried on transient failures with the
 * same Idempotency-Key, so a retry after a lost answer is applied once; the cancel signal of the
 * gateway (X-ESS-Cancel-Requested) is surfaced on every answer.
 */
export class EssJobClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(readonly options: EssJobClientOptions) {
    this.base = `${options.baseUrl.replace(/\/$/, "")}/ess/rest/scheduler/v1/requests/${options.requestId}`;
    this.fetchFn = options.fetch ?? fetch;
  }

  /** The requestExecutionContext string of this execution (`ess1:<requestId>:<requestHandle>`). */
  get executionContext(): string {
    return formatExecutionContext(String(this.options.requestId), this.options.requestHandle);
  }

  /** Reports a status (SUCCESS, ERROR, CANCEL, ...) through executionStatus. */
  async reportStatus(status: CallbackStatus, statusMessage?: string): Promise<StatusReport> {
    const body: Record<string, string> = { requestHandle: this.options.requestHandle, status };
    if (statusMessage !== undefined) body.statusMessage = statusMessage;
    const res = await this.post("executionStatus", body, true);
    return { cancelRequested: res.headers.get(CANCEL_REQUESTED_HEADER) === "true" };
  }

  /** An UPDATE: tells the scheduler the job is alive (a check-in); answers whether to cancel. */
  async heartbeat(statusMessage?: string): Promise<StatusReport> {
    return this.reportStatus("UPDATE", statusMessage);
  }

  /** ESS checkInCancelling: true when a cancel is under way. Counts as a check-in. */
  async checkInCancelling(): Promise<boolean> {
    const res = await this.post("checkInCancelling", { requestExecutionContext: this.executionContext }, false);
    return (await res.json()) === true;
  }

  private async post(op: string, body: unknown, idempotent: boolean): Promise<Response> {
    const attempts = this.options.attempts ?? 5;
    let delay = this.options.backoffMs ?? 200;
    // one key for all attempts of this call: the gateway applies it once
    const key = randomUUID();
    let last: EssClientError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const res = await this.fetchFn(`${this.base}/${op}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(idempotent ? { "idempotency-key": key } : {}),
            ...this.options.headers,
          },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 10000),
        });
        if (res.ok) return res;
        const text = await res.text();
        let detail = text;
        let errorCode: string | undefined;
        try {
          const parsed = JSON.parse(text) as { detail?: string; errorCode?: string };
          detail = parsed.detail ?? text;
          errorCode = parsed.errorCode;
        } catch {
          // not a SimpleExceptionDetail: keep the text
        }
        last = new EssClientError(`${op} answered ${res.status}: ${detail}`, res.status, errorCode);
        if (!RETRYABLE.has(res.status)) throw last;
        const retryAfter = Number(res.headers.get("retry-after"));
        if (Number.isFinite(retryAfter) && retryAfter > 0) delay = Math.max(delay, retryAfter * 1000);
      } catch (err) {
        if (err instanceof EssClientError && !RETRYABLE.has(err.status)) throw err;
        if (!(err instanceof EssClientError)) last = new EssClientError(`${op} failed: ${(err as Error).message}`, 0);
      }
      if (attempt < attempts) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
    throw last ?? new EssClientError(`${op} failed`, 0);
  }
}

export { type CloudEvent, WebhookReceiver, type WebhookReceiverOptions, WebhookVerificationError } from "./webhooks.js";
