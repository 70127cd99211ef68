import { type CloudEvent, cloudEventSchema, verifyWebhook, type WebhookVerifyFailure } from "@ess/contract";

export type { CloudEvent } from "@ess/contract";

/** A webhook delivery that did not verify: answer it 400 (or 401) and do not act on it. */
export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
  constructor(readonly reason: WebhookVerifyFailure | "not-a-cloudevent") {
    super(`webhook delivery rejected: ${reason}`);
  }
}

export interface WebhookReceiverOptions {
  /**
   * The subscription's secrets (`whsec_…`) the receiver accepts: during a rotation, the new one and the
   * old one (the gateway signs with both while the old one's window lasts).
   */
  secrets: readonly string[];
  /** Largest age (either way) of webhook-timestamp accepted, in seconds. Default 300. */
  toleranceSeconds?: number;
}

/**
 * The receiving side of the gateway's webhooks: checks a delivery's Standard Webhooks signature against
 * the subscription's secrets (any one of them matching is enough) and its timestamp, then parses the
 * CloudEvent. Pass the raw body exactly as received (not re-serialised JSON).
 *
 * Events of one request arrive in `data.seq` order; a retry repeats the same `id`, and a dead-lettered
 * event that is replayed later arrives after its successors: drop an event whose `data.seq` is at or
 * below the last one applied for its `subject` (the request id).
 */
export class WebhookReceiver {
  constructor(readonly options: WebhookReceiverOptions) {
    if (options.secrets.length === 0) throw new Error("WebhookReceiver needs at least one secret");
  }

  /** The verified CloudEvent; throws WebhookVerificationError when the delivery does not verify. */
  verify(headers: Record<string, string | string[] | undefined> | Headers, body: string): CloudEvent {
    const plain: Record<string, string | string[] | undefined> =
      headers instanceof Headers ? Object.fromEntries(headers.entries()) : headers;
    let failure: WebhookVerifyFailure | null = "no-matching-signature";
    for (const secret of this.options.secrets) {
      failure = verifyWebhook(secret, plain, body, { toleranceSeconds: this.options.toleranceSeconds });
      if (failure === null || failure !== "no-matching-signature") break;
    }
    if (failure) throw new WebhookVerificationError(failure);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new WebhookVerificationError("not-a-cloudevent");
    }
    const event = cloudEventSchema.safeParse(parsed);
    if (!event.success) throw new WebhookVerificationError("not-a-cloudevent");
    return event.data;
  }
}
