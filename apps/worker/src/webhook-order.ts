import type { WebhookJob } from "@ess/contract";
import { type DeliveryAttempt, deliveryJobId, JOB_DELIVER, type RequestStore, type WebhookStore } from "@ess/store";
import type { Queue } from "bullmq";

export interface DeliveryOrderOptions {
  attempts: number;
  backoffMs: number;
  /** how long a missing seq may hold back the later ones before it is skipped (GAP_TIMEOUT_MS) */
  gapTimeoutMs: number;
}

/**
 * Ordered delivery per request per subscription. Each (subscription, request) has a queue in Redis, a
 * sorted set of its undelivered CloudEvents scored by the request's event seq, and a `next` in the
 * subscription's hash: the seq it delivers next. Only the head of the queue has a BullMQ job (its id
 * derived from the seq, so adding it twice adds one job); the job's success, or its dead letter once
 * its attempts are spent, removes the head, moves `next` past it and adds the job of the following
 * event. A failing delivery so holds back only the later events of its own request for its own
 * subscription. Everything lives in Redis: a worker that dies is replaced by any other (BullMQ takes
 * over the stalled job; the periodic sweep adds the job of any head that has none).
 */
export class DeliveryOrder {
  constructor(
    private readonly store: RequestStore,
    private readonly webhooks: WebhookStore,
    private readonly queueFor: (p: number) => Queue,
    private readonly opts: DeliveryOrderOptions,
  ) {}

  /** Puts an event into the queue of a subscription for a request, then releases the head if it may go. */
  async enqueue(p: number, requestId: string, subId: string, seq: number, body: string): Promise<void> {
    const { keys, redis } = this.store;
    await redis
      .multi()
      .zadd(keys.deliveryQueue(p, requestId, subId), "NX", seq, body)
      .sadd(keys.activeDeliveries(p), `${requestId} ${subId}`)
      .exec();
    await this.pump(p, requestId, subId);
  }

  /**
   * Adds the job of the queue's head when it is the seq due next. An event at or below `next` was
   * handled already (a re-read of the stream): dropped. A head past `next` waits for the missing seqs
   * (another worker may be adding them this very moment) up to gapTimeoutMs, then they are skipped
   * (their stream entries were lost) and the skip is logged.
   */
  async pump(p: number, requestId: string, subId: string, now = Date.now()): Promise<void> {
    const { keys, redis } = this.store;
    const subKey = keys.subscription(p, requestId, subId);
    const q = keys.deliveryQueue(p, requestId, subId);
    const member = `${requestId} ${subId}`;
    const [url, nextRaw, gapAt] = await redis.hmget(subKey, "url", "next", "gapAt");
    if (!url) {
      // unsubscribed (or expired with its request): nothing more to deliver
      await redis.multi().del(q).srem(keys.activeDeliveries(p), member).exec();
      return;
    }
    const next = Number(nextRaw ?? 1);
    await redis.zremrangebyscore(q, "-inf", `(${next}`);
    const head = (await redis.zrange(q, 0, "0", "WITHSCORES")) as string[];
    const [body, score] = head;
    if (body === undefined || score === undefined) {
      await redis.srem(keys.activeDeliveries(p), member);
      return;
    }
    const seq = Number(score);
    if (seq > next) {
      if (!gapAt) {
        await redis.hset(subKey, "gapAt", now);
        return;
      }
      if (now - Number(gapAt) < this.opts.gapTimeoutMs) return;
      await redis.multi().hset(subKey, "next", seq).hdel(subKey, "gapAt").exec();
      await this.webhooks.record(requestId, subId, {
        at: now,
        eventId: "",
        seq: next,
        type: "",
        kind: "ordered",
        attempt: 0,
        outcome: "skipped",
        status: null,
        latencyMs: null,
        error: `events ${next}..${seq - 1} never reached the dispatcher within GAP_TIMEOUT_MS; skipped`,
      });
    } else if (gapAt) {
      await redis.hdel(subKey, "gapAt");
    }
    const event = JSON.parse(body) as { id: string };
    const job: WebhookJob = {
      v: 2,
      kind: "ordered",
      requestId,
      subscriptionId: subId,
      url,
      eventId: event.id,
      seq,
      body,
    };
    await this.queueFor(p).add(JOB_DELIVER, job, {
      jobId: deliveryJobId(requestId, subId, seq),
      attempts: this.opts.attempts,
      backoff: { type: "exponential", delay: this.opts.backoffMs, jitter: 0.5 },
      removeOnComplete: true,
      // failed deliveries stay, to be listed and replayed (DLQ)
      removeOnFail: false,
    });
  }

  /**
   * The head event `seq` is done with (delivered, or dead-lettered): out of the queue, `next` past it,
   * and the following event released. A replayed dead letter passes here too and moves nothing back.
   */
  async advance(p: number, requestId: string, subId: string, seq: number, body: string): Promise<void> {
    const { keys, redis } = this.store;
    const subKey = keys.subscription(p, requestId, subId);
    await redis.zrem(keys.deliveryQueue(p, requestId, subId), body);
    const next = Number((await redis.hget(subKey, "next")) ?? 0);
    // only one event of a queue is in flight at a time: nobody else moves `next` meanwhile
    if (next <= seq && (await redis.exists(subKey)) === 1) await redis.hset(subKey, "next", seq + 1);
    await this.pump(p, requestId, subId);
  }

  /** Releases the head of every queue of partition p that holds events (after a crash, or a gap's timeout). */
  async sweep(p: number): Promise<void> {
    const { keys, redis } = this.store;
    let cursor = "0";
    do {
      const [nextCursor, members] = await redis.sscan(keys.activeDeliveries(p), cursor, "COUNT", 200);
      cursor = nextCursor;
      for (const m of members) {
        const [requestId, subId] = m.split(" ");
        if (requestId && subId) await this.pump(p, requestId, subId);
      }
    } while (cursor !== "0");
  }
}

/** A log entry for an event that did not get an HTTP answer (dead-lettered, refused). */
export function attemptWithoutAnswer(
  job: WebhookJob,
  type: string,
  attempt: number,
  outcome: DeliveryAttempt["outcome"],
  error: string,
): DeliveryAttempt {
  return {
    at: Date.now(),
    eventId: job.eventId,
    seq: job.seq,
    type,
    kind: job.kind,
    attempt,
    outcome,
    status: null,
    latencyMs: null,
    error,
  };
}
