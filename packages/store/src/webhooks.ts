import { createHash } from "node:crypto";
import { cloudEventJson, eventSource, newWebhookSecret, parseEventId, type WebhookJob } from "@ess/contract";
import { EssError } from "@ess/domain";
import type { Queue } from "bullmq";
import { decodeReply } from "./codes.js";
import type { SecretBox } from "./secret-box.js";
import type { RequestStore } from "./store.js";

/** One webhook subscription of a request, as the API shows it (never its secret). */
export interface Subscription {
  /** 16 hex digits of SHA-256(callbackUrl): stable for a URL */
  id: string;
  requestId: string;
  callbackUrl: string;
  createdAt: number;
  /** the request's event seq when it subscribed: it receives the events after it */
  since: number;
  /** the seq it delivers next (events before it were delivered, dead-lettered or skipped) */
  next: number;
  /** events waiting for their turn (the one in flight included) */
  pending: number;
  /** when the secret was last rotated (ms) */
  rotatedAt: number | null;
  /** until when (ms) the previous secret's signature is sent too; null: no previous secret */
  previousSecretValidUntil: number | null;
}

/** What happened to one delivery attempt (or to an event without one). */
export type DeliveryOutcome = "delivered" | "failed" | "dead-lettered" | "skipped" | "refused";

/** One entry of a subscription's delivery log. */
export interface DeliveryAttempt {
  /** when the attempt ended (ms) */
  at: number;
  eventId: string;
  seq: number;
  /** the event's ESS name */
  type: string;
  /** `ordered` (its turn in the request's order) or `redelivery` (sent again on request) */
  kind: "ordered" | "redelivery";
  /** 1 for the first attempt of this event (this kind), 2 for its first retry, … */
  attempt: number;
  outcome: DeliveryOutcome;
  /** the receiver's HTTP status; null when none came */
  status: number | null;
  latencyMs: number | null;
  error: string | null;
}

/** The result of a subscribe call: the secret is there only when the subscription was made now. */
export interface SubscribeResult {
  added: boolean;
  subscription: Subscription;
  /** `whsec_…`, generated unless the caller gave one; answered once, stored only encrypted */
  secret?: string;
}

/** Job name of an ordered delivery (the head of a subscription's queue for one request). */
export const JOB_DELIVER = "deliver";
/** Job name of a redelivery on request (one attempt, outside the order, never dead-lettered). */
export const JOB_REDELIVER = "redeliver";

/** BullMQ job id of the ordered delivery of event `seq` of a request to a subscription: deterministic. */
export function deliveryJobId(requestId: string, subId: string, seq: number): string {
  return `${requestId}-${subId}-${seq}`;
}

/** Subscription id of a URL. */
export function subscriptionId(callbackUrl: string): string {
  return createHash("sha256").update(callbackUrl).digest("hex").slice(0, 16);
}

/** What a sealed secret of a subscription is bound to (its AES-GCM additional data). */
export function secretAad(requestId: string, subId: string, which: "secret" | "previous"): string {
  return `${requestId}/${subId}/${which}`;
}

/**
 * Webhook subscriptions in Redis: the subscriptions of each request (their secrets sealed by a
 * SecretBox, never in plain text), their ordered delivery queues, and their capped delivery logs.
 */
export class WebhookStore {
  constructor(
    readonly store: RequestStore,
    /** seals and opens the secrets; without one, subscribe and rotate answer 503 */
    private readonly box: SecretBox | undefined,
    /** entries kept per subscription's delivery log (WEBHOOK_LOG_LIMIT) */
    readonly logLimit = 100,
  ) {}

  private requireBox(): SecretBox {
    if (!this.box) {
      throw new EssError(
        "UNAVAILABLE",
        "webhook subscriptions need WEBHOOK_SECRET (the key that encrypts their secrets) on the gateway",
      );
    }
    return this.box;
  }

  /**
   * Subscribes a URL to a request's state changes; 404 for an unknown request. A new subscription gets
   * the given secret or a generated one, answered once; an existing one is left as it is (no secret).
   */
  async subscribe(requestId: string, callbackUrl: string, secret?: string, now = Date.now()): Promise<SubscribeResult> {
    const { keys, redis } = this.store;
    const box = this.requireBox();
    const p = keys.partition(requestId);
    const subId = subscriptionId(callbackUrl);
    const plain = secret ?? newWebhookSecret();
    const reply = await redis.ess_subscribe(
      keys.request(p, requestId),
      keys.subscriptions(p, requestId),
      keys.subscription(p, requestId, subId),
      callbackUrl,
      subId,
      box.seal(plain, secretAad(requestId, subId, "secret")),
      now,
    );
    const added = decodeReply(reply, { requestId }) === "SUBSCRIBED";
    const subscription = await this.get(requestId, subId);
    if (!subscription) throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    return added ? { added, subscription, secret: plain } : { added, subscription };
  }

  /** Drops a URL's subscription with its queue and log; 404 for an unknown request. False if it was not there. */
  async unsubscribe(requestId: string, callbackUrl: string): Promise<boolean> {
    const { keys, redis } = this.store;
    const p = keys.partition(requestId);
    await this.requireRequest(requestId);
    const subId = subscriptionId(callbackUrl);
    const [[, removed]] = (await redis
      .multi()
      .hdel(keys.subscriptions(p, requestId), callbackUrl)
      .del(
        keys.subscription(p, requestId, subId),
        keys.deliveryQueue(p, requestId, subId),
        keys.deliveryLog(p, requestId, subId),
      )
      .srem(keys.activeDeliveries(p), `${requestId} ${subId}`)
      .exec()) as [[null, number]];
    return removed === 1;
  }

  /** The subscriptions of a request (URL → subscription id), as the dispatcher reads them. */
  async subscriptionIds(requestId: string): Promise<Map<string, string>> {
    const { keys, redis } = this.store;
    const all = await redis.hgetall(keys.subscriptions(keys.partition(requestId), requestId));
    return new Map(Object.entries(all));
  }

  /** Every subscription of a request; 404 for an unknown request. */
  async list(requestId: string): Promise<Subscription[]> {
    await this.requireRequest(requestId);
    const out: Subscription[] = [];
    for (const subId of (await this.subscriptionIds(requestId)).values()) {
      const s = await this.get(requestId, subId);
      if (s) out.push(s);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** One subscription, or null. */
  async get(requestId: string, subId: string): Promise<Subscription | null> {
    const { keys, redis } = this.store;
    const p = keys.partition(requestId);
    const [[, h], [, pending]] = (await redis
      .multi()
      .hgetall(keys.subscription(p, requestId, subId))
      .zcard(keys.deliveryQueue(p, requestId, subId))
      .exec()) as [[null, Record<string, string>], [null, number]];
    if (!h.url) return null;
    return {
      id: subId,
      requestId,
      callbackUrl: h.url,
      createdAt: Number(h.createdAt),
      since: Number(h.since ?? 0),
      next: Number(h.next ?? 1),
      pending,
      rotatedAt: h.rotatedAt ? Number(h.rotatedAt) : null,
      previousSecretValidUntil: h.previous && h.previousUntil ? Number(h.previousUntil) : null,
    };
  }

  /** A subscription or 404 naming what is missing. */
  async require(requestId: string, subId: string): Promise<Subscription> {
    const s = await this.get(requestId, subId);
    if (s) return s;
    await this.requireRequest(requestId);
    throw new EssError("ROUTE_NOT_FOUND", `request ${requestId} has no subscription ${subId.slice(0, 40)}`);
  }

  /**
   * The secrets a delivery is signed with now, newest first: the current one, and the previous one
   * while its rotation window lasts. Null when the subscription is gone.
   */
  async signingSecrets(
    requestId: string,
    subId: string,
    now = Date.now(),
  ): Promise<{ url: string; secrets: string[] } | null> {
    const { keys, redis } = this.store;
    const box = this.requireBox();
    const h = await redis.hgetall(keys.subscription(keys.partition(requestId), requestId, subId));
    if (!h.url || !h.secret) return null;
    const secrets = [box.open(h.secret, secretAad(requestId, subId, "secret"))];
    if (h.previous && Number(h.previousUntil) > now)
      secrets.push(box.open(h.previous, secretAad(requestId, subId, "previous")));
    return { url: h.url, secrets };
  }

  /**
   * Rotates a subscription's secret: the new one (given or generated) signs from now on, the previous
   * one is still sent alongside it for `graceMs`. Returns the new secret (answered once).
   */
  async rotate(
    requestId: string,
    subId: string,
    graceMs: number,
    secret?: string,
    now = Date.now(),
  ): Promise<{ secret: string; previousSecretValidUntil: number | null }> {
    const { keys, redis } = this.store;
    const box = this.requireBox();
    await this.require(requestId, subId);
    const key = keys.subscription(keys.partition(requestId), requestId, subId);
    const currentSealed = await redis.hget(key, "secret");
    if (!currentSealed) throw new EssError("ROUTE_NOT_FOUND", `request ${requestId} has no subscription ${subId}`);
    const current = box.open(currentSealed, secretAad(requestId, subId, "secret"));
    const plain = secret ?? newWebhookSecret();
    const until = graceMs > 0 ? now + graceMs : null;
    const m = redis
      .multi()
      .hset(key, "secret", box.seal(plain, secretAad(requestId, subId, "secret")), "rotatedAt", now);
    if (until === null) m.hdel(key, "previous", "previousUntil");
    else m.hset(key, "previous", box.seal(current, secretAad(requestId, subId, "previous")), "previousUntil", until);
    await m.exec();
    return { secret: plain, previousSecretValidUntil: until };
  }

  /** Appends an attempt to a subscription's log, keeping the newest `logLimit`. */
  async record(requestId: string, subId: string, attempt: DeliveryAttempt): Promise<void> {
    const { keys, redis } = this.store;
    const key = keys.deliveryLog(keys.partition(requestId), requestId, subId);
    await redis
      .multi()
      .lpush(key, JSON.stringify(attempt))
      .ltrim(key, 0, this.logLimit - 1)
      .exec();
  }

  /** The newest `limit` entries of a subscription's delivery log, newest first. */
  async deliveries(requestId: string, subId: string, limit = this.logLimit): Promise<DeliveryAttempt[]> {
    const { keys, redis } = this.store;
    const raw = await redis.lrange(keys.deliveryLog(keys.partition(requestId), requestId, subId), 0, limit - 1);
    return raw.map((r) => JSON.parse(r) as DeliveryAttempt);
  }

  /**
   * The CloudEvent of one of the request's events, read back from its partition's stream; null when the
   * stream no longer holds it (trimmed past EVENTS_MAXLEN) or it is not this request's.
   */
  async event(requestId: string, eventId: string): Promise<{ body: string; seq: number; type: string } | null> {
    const { keys, redis } = this.store;
    const parsed = parseEventId(eventId);
    const p = keys.partition(requestId);
    if (!parsed || parsed.partition !== p) return null;
    const entries = (await redis.xrange(keys.events(p), parsed.entryId, parsed.entryId)) as [string, string[]][];
    const flat = entries[0]?.[1];
    if (!flat) return null;
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    if (fields.requestId !== requestId || !fields.eventSeq) return null;
    return {
      body: cloudEventJson(eventSource(keys.prefix), p, parsed.entryId, fields),
      seq: Number(fields.eventSeq),
      type: fields.event ?? "",
    };
  }

  /**
   * Sends one event of the request to a subscription again, now, outside the order: one attempt on the
   * partition's webhook queue, its outcome in the delivery log, never dead-lettered. 404 when the
   * subscription is unknown or the event is no longer in the stream.
   */
  async redeliver(
    requestId: string,
    subId: string,
    eventId: string,
    queueFor: (partition: number) => Queue,
  ): Promise<{ seq: number; jobId: string }> {
    const subscription = await this.require(requestId, subId);
    const event = await this.event(requestId, eventId);
    if (!event) {
      throw new EssError(
        "ROUTE_NOT_FOUND",
        `event ${eventId.slice(0, 60)} of request ${requestId} is not in the event stream (not this request's, or trimmed)`,
      );
    }
    const job: WebhookJob = {
      v: 2,
      kind: "redelivery",
      requestId,
      subscriptionId: subId,
      url: subscription.callbackUrl,
      eventId,
      seq: event.seq,
      body: event.body,
    };
    const added = await queueFor(this.store.keys.partition(requestId)).add(JOB_REDELIVER, job, {
      attempts: 1,
      removeOnComplete: true,
      removeOnFail: true,
    });
    return { seq: event.seq, jobId: String(added.id) };
  }

  private async requireRequest(requestId: string): Promise<void> {
    const { keys, redis } = this.store;
    if ((await redis.exists(keys.request(keys.partition(requestId), requestId))) === 0) {
      throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    }
  }
}
