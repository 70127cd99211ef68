import {
  CLOUDEVENTS_MEDIA_TYPE,
  cloudEventJson,
  eventSource,
  signWebhook,
  WEBHOOK_HEADERS,
  type WebhookAddressPolicy,
  type WebhookJob,
  webhookJobSchema,
} from "@ess/contract";
import { isRequestState, isTerminal } from "@ess/domain";
import {
  compareStreamIds,
  type DeadLetters,
  type DeliveryAttempt,
  isCluster,
  JOB_REDELIVER,
  type RequestStore,
  readGroup,
  reasonMessage,
  WEBHOOK_QUEUE,
  type WebhookStore,
} from "@ess/store";
import type { Redis } from "ioredis";
import { type Job, Queue, UnrecoverableError, Worker } from "./bullmq.js";
import { type Resolver, WebhookAddressRefused, WebhookTransport } from "./delivery.js";
import { attemptWithoutAnswer, DeliveryOrder } from "./webhook-order.js";
import type { WorkerLogger } from "./worker.js";

/** Consumer group of the webhook dispatcher on every partition's event stream. */
export const WEBHOOK_GROUP = "webhooks";
/** Pending stream entries of a consumer that died are taken over after this long. */
const CLAIM_IDLE_MS = 60000;
/** How often the delivery queues are swept for a head without a job (after a crash) or a gap past its timeout. */
const SWEEP_MS = 1000;

export interface WebhookDeps {
  connection: Redis;
  store: RequestStore;
  partitions: number[];
  /** the subscriptions, their secrets (opened with the key from WEBHOOK_SECRET) and delivery logs */
  webhooks: WebhookStore;
  /** a missing event seq holds back the later ones this long before it is skipped (GAP_TIMEOUT_MS) */
  gapTimeoutMs: number;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
  concurrency: number;
  log: WorkerLogger;
  /** consumer name in the group; unique per process */
  consumer: string;
  /** where deliveries that failed all their attempts go (replayable like any dead letter) */
  deadLetters: DeadLetters;
  /** which targets may be reached (WEBHOOK_ALLOW_HOSTS); checked again on every connection */
  policy: WebhookAddressPolicy;
  /** name resolution of the delivery connections (default: the system resolver); tests inject a stub */
  resolve?: Resolver;
  /** runs around each delivery of partition p (tracing); absent: the delivery runs as it is */
  around?: (p: number, job: Job, deliver: () => Promise<number>) => Promise<number>;
}

/** The running webhook side: dispatcher loop plus delivery workers. */
export interface Webhooks {
  workers: Worker[];
  close(): Promise<void>;
}

/**
 * Delivers each state change of a subscribed request to its callback URLs, in the request's order per
 * subscription. A dispatcher reads the partitions' event streams through the consumer group
 * WEBHOOK_GROUP and puts every event into the delivery queue of each subscription of its request
 * (DeliveryOrder); delivery workers POST the head event as a CloudEvent signed the Standard Webhooks
 * way, retry it with exponential backoff, and release the next one once it is delivered or dead-lettered.
 */
export function startWebhooks(deps: WebhookDeps): Webhooks {
  const { store, log, webhooks } = deps;
  const keys = store.keys;
  const source = eventSource(keys.prefix);
  const queues = new Map(
    deps.partitions.map((p) => {
      const q = new Queue(WEBHOOK_QUEUE, { connection: deps.connection, prefix: keys.tag(p) });
      q.on("error", () => {});
      return [p, q] as const;
    }),
  );
  // XREADGROUP BLOCK holds its connection: it gets its own (a Cluster polls on the shared one, see readGroup)
  const reader = isCluster(deps.connection) ? deps.connection : deps.connection.duplicate();
  reader.on("error", () => {});
  let stopped = false;
  const transport = new WebhookTransport({ policy: deps.policy, resolve: deps.resolve, timeoutMs: deps.timeoutMs });
  const queueOf = (p: number) => {
    const q = queues.get(p);
    if (!q) throw new Error(`partition ${p} is not served here`);
    return q;
  };
  const order = new DeliveryOrder(store, webhooks, queueOf, {
    attempts: deps.attempts,
    backoffMs: deps.backoffMs,
    gapTimeoutMs: deps.gapTimeoutMs,
  });
  // per partition, the newest entry dispatched and acknowledged: where a lost consumer group starts again
  const lastDispatched = new Map<number, string>();

  async function dispatch(p: number, id: string, fields: Record<string, string>): Promise<void> {
    const requestId = fields.requestId;
    const seq = Number(fields.eventSeq);
    if (requestId && Number.isInteger(seq) && seq > 0) {
      const subs = await webhooks.subscriptionIds(requestId);
      const body = cloudEventJson(source, p, id, fields);
      // each subscription hears of the events after its `since` (the queue drops the earlier ones)
      for (const subId of subs.values()) await order.enqueue(p, requestId, subId, seq, body);
      if (fields.state && isRequestState(fields.state) && isTerminal(fields.state)) {
        // the subscriptions go with the ended request (its other keys expire after the retention too)
        const ttl = store.limits.retentionSeconds;
        const m = store.redis.multi().expire(keys.subscriptions(p, requestId), ttl);
        for (const subId of subs.values()) {
          m.expire(keys.subscription(p, requestId, subId), ttl)
            .expire(keys.deliveryQueue(p, requestId, subId), ttl)
            .expire(keys.deliveryLog(p, requestId, subId), ttl);
        }
        await m.exec();
      }
    } else if (requestId) {
      log.warn({ partition: p, entry: id }, "event stream entry without eventSeq: not delivered to webhooks");
    }
    await store.redis.xack(keys.events(p), WEBHOOK_GROUP, id);
    const last = lastDispatched.get(p);
    if (last === undefined || compareStreamIds(id, last) > 0) lastDispatched.set(p, id);
  }

  /**
   * Where a missing group starts. After our last dispatched entry when that entry is still in the stream
   * (the group alone was lost: nothing is read twice); otherwise from the start of the stream, since
   * Redis lost the stream with the group (restarted without its data) and every entry in it was written
   * after that. Never "$", which would skip what was written before the group came back. Subscribers only
   * hear of events after their subscription, so a first deployment sends nothing old either.
   */
  async function groupStart(p: number): Promise<string> {
    const last = lastDispatched.get(p);
    if (last === undefined) return "0";
    const still = await store.redis.xrange(keys.events(p), last, last);
    return still.length > 0 ? last : "0";
  }

  async function ensureGroups(): Promise<void> {
    for (const p of deps.partitions) {
      try {
        const start = await groupStart(p);
        await store.redis.xgroup("CREATE", keys.events(p), WEBHOOK_GROUP, start, "MKSTREAM");
        log.info({ partition: p, start }, "webhook consumer group created");
      } catch (err) {
        if (!String((err as Error).message).includes("BUSYGROUP")) throw err;
      }
    }
  }

  async function claimAbandoned(): Promise<void> {
    for (const p of deps.partitions) {
      const r = (await store.redis.xautoclaim(
        keys.events(p),
        WEBHOOK_GROUP,
        deps.consumer,
        CLAIM_IDLE_MS,
        "0-0",
        "COUNT",
        100,
      )) as [string, [string, string[]][]];
      for (const [id, flat] of r[1] ?? []) await dispatch(p, id, toFields(flat));
    }
  }

  async function loop(): Promise<void> {
    let lastClaim = 0;
    let lastSweep = 0;
    let groups = false;
    while (!stopped) {
      try {
        if (!groups) {
          await ensureGroups();
          groups = true;
        }
        if (Date.now() - lastClaim > CLAIM_IDLE_MS / 2) {
          lastClaim = Date.now();
          await claimAbandoned();
        }
        if (Date.now() - lastSweep > SWEEP_MS) {
          lastSweep = Date.now();
          for (const p of deps.partitions) await order.sweep(p);
        }
        const streams = deps.partitions.map((p) => keys.events(p));
        const res = await readGroup(store.redis, reader, streams, WEBHOOK_GROUP, deps.consumer, 200, 1000);
        for (const [stream, entries] of res) {
          const p = deps.partitions[streams.indexOf(stream)] as number;
          for (const [id, flat] of entries) await dispatch(p, id, toFields(flat));
        }
      } catch (err) {
        if (stopped) break;
        // a stream deleted (or a Redis without the groups after a restore): create them again
        if (String((err as Error).message).includes("NOGROUP")) groups = false;
        log.warn({ err: (err as Error).message }, "webhook dispatcher failed; retrying");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** Appends to the subscription's delivery log; a log that cannot be written does not fail the delivery. */
  async function logAttempt(job: WebhookJob, attempt: DeliveryAttempt): Promise<void> {
    await webhooks.record(job.requestId, job.subscriptionId, attempt).catch((err: Error) => {
      log.warn({ requestId: job.requestId, err: err.message }, "webhook delivery log not written");
    });
  }

  /** The ESS event name of a delivery (for the log). */
  const typeOf = (job: WebhookJob) => /"event":"([A-Z_]+)"/.exec(job.body)?.[1] ?? "";

  /**
   * One attempt to deliver one event: POSTs the CloudEvent signed with the subscription's current
   * secrets (both during a rotation), logs the attempt, and on success releases the request's next event.
   */
  async function deliver(job: { data: unknown; id?: string | undefined; attemptsMade: number }): Promise<number> {
    const parsed = webhookJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid webhook job payload"));
    const data = parsed.data;
    const { url, body, eventId } = data;
    const p = keys.partition(data.requestId);
    const target = await webhooks.signingSecrets(data.requestId, data.subscriptionId);
    // unsubscribed meanwhile (or the URL's subscription was made anew): nothing to deliver
    if (!target || target.url !== url) return 0;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const attempt = job.attemptsMade + 1;
    const started = performance.now();
    let status: number;
    try {
      status = await transport.post(
        url,
        {
          "content-type": CLOUDEVENTS_MEDIA_TYPE,
          [WEBHOOK_HEADERS.id]: eventId,
          [WEBHOOK_HEADERS.timestamp]: timestamp,
          [WEBHOOK_HEADERS.signature]: signWebhook(target.secrets, eventId, timestamp, body),
        },
        body,
      );
    } catch (err) {
      const refused = err instanceof WebhookAddressRefused;
      await logAttempt(data, {
        ...attemptWithoutAnswer(data, typeOf(data), attempt, refused ? "refused" : "failed", (err as Error).message),
        latencyMs: Math.round(performance.now() - started),
      });
      // a refused target stays refused: straight to the dead letters, with the rule that refused it
      if (refused) throw new UnrecoverableError(reasonMessage("permanent-error", err.message));
      throw err;
    }
    const ok = status >= 200 && status < 300;
    await logAttempt(data, {
      at: Date.now(),
      eventId,
      seq: data.seq,
      type: typeOf(data),
      kind: data.kind,
      attempt,
      outcome: ok ? "delivered" : "failed",
      status,
      latencyMs: Math.round(performance.now() - started),
      error: ok ? null : `receiver answered ${status}`,
    });
    if (!ok) throw new Error(`receiver answered ${status}`);
    if (data.kind === "ordered") await order.advance(p, data.requestId, data.subscriptionId, data.seq, body);
    return status;
  }

  const workers = deps.partitions.map((p) => {
    const around = deps.around;
    const w = new Worker(WEBHOOK_QUEUE, around ? (job: Job) => around(p, job, () => deliver(job)) : deliver, {
      connection: deps.connection,
      prefix: keys.tag(p),
      concurrency: deps.concurrency,
    });
    w.on("failed", (job, err) => {
      if (job?.name === JOB_REDELIVER) {
        // a redelivery on request is one attempt; its outcome is in the delivery log
        log.warn({ partition: p, jobId: job.id, err: err.message }, "webhook redelivery failed");
        return;
      }
      if (job && (err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1))) {
        // the request's next event for this subscription goes on; the receiver sees the gap in seq
        const data = webhookJobSchema.safeParse(job.data);
        if (data.success && data.data.kind === "ordered") {
          const d = data.data;
          void logAttempt(d, attemptWithoutAnswer(d, typeOf(d), job.attemptsMade, "dead-lettered", err.message))
            .then(() => order.advance(p, d.requestId, d.subscriptionId, d.seq, d.body))
            .catch((e: Error) =>
              log.warn({ partition: p, err: e.message }, "webhook queue not advanced; the sweep will"),
            );
        }
        // out of attempts: into the dead letters (if this fails the job stays failed; the worker's sweep moves it)
        log.error(
          { partition: p, jobId: job.id, url: (job.data as WebhookJob | undefined)?.url, err: err.message },
          err instanceof UnrecoverableError
            ? "webhook delivery cannot succeed; dead-lettered"
            : "webhook delivery failed for good; dead-lettered",
        );
        void deps.deadLetters.record(p, job).catch(() => {});
      } else {
        log.warn(
          { partition: p, jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message },
          "webhook delivery failed; will retry",
        );
      }
    });
    w.on("error", (err) => log.error({ partition: p, err: err.message }, "webhook worker error"));
    return w;
  });

  const running = loop();

  return {
    workers,
    async close() {
      stopped = true;
      if (reader !== deps.connection) reader.disconnect();
      await running;
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([...queues.values()].map((q) => q.close()));
      transport.close();
    },
  };
}

function toFields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}
