import { createHash } from "node:crypto";
import {
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
  eventJson,
  type RequestStore,
  reasonMessage,
  SchedulerStore,
  WEBHOOK_QUEUE,
} from "@ess/store";
import { type Job, Queue, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { type Resolver, WebhookAddressRefused, WebhookTransport } from "./delivery.js";
import type { WorkerLogger } from "./worker.js";

/** Consumer group of the webhook dispatcher on every partition's event stream. */
export const WEBHOOK_GROUP = "webhooks";
/** Job name of one delivery. */
const JOB_DELIVER = "deliver";
/** Pending stream entries of a consumer that died are taken over after this long. */
const CLAIM_IDLE_MS = 60000;

export interface WebhookDeps {
  connection: Redis;
  store: RequestStore;
  partitions: number[];
  /** HMAC-SHA256 key (WEBHOOK_SECRET) */
  secret: string;
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
 * Delivers each state change of a subscribed request to its callback URLs. A dispatcher reads the
 * partitions' event streams through the consumer group WEBHOOK_GROUP and turns every (event, URL)
 * into a BullMQ job on the partition's webhook queue (deterministic job id: a re-read adds nothing);
 * delivery workers POST the signed event and retry with exponential backoff.
 */
export function startWebhooks(deps: WebhookDeps): Webhooks {
  const { store, log } = deps;
  const scheduler = new SchedulerStore(store);
  const keys = store.keys;
  const queues = new Map(
    deps.partitions.map((p) => {
      const q = new Queue(WEBHOOK_QUEUE, { connection: deps.connection, prefix: keys.tag(p) });
      q.on("error", () => {});
      return [p, q] as const;
    }),
  );
  // XREADGROUP BLOCK holds its connection: it gets its own
  const reader = deps.connection.duplicate();
  reader.on("error", () => {});
  let stopped = false;
  const transport = new WebhookTransport({ policy: deps.policy, resolve: deps.resolve, timeoutMs: deps.timeoutMs });
  // per partition, the newest entry dispatched and acknowledged: where a lost consumer group starts again
  const lastDispatched = new Map<number, string>();

  async function dispatch(p: number, id: string, fields: Record<string, string>): Promise<void> {
    const requestId = fields.requestId;
    if (requestId) {
      const subs = await scheduler.subscribers(requestId);
      const body = eventJson(id, fields);
      const at = Number(id.split("-")[0]);
      for (const [url, since] of subs) {
        // a subscriber hears of what happened after it subscribed
        if (at < since) continue;
        const job: WebhookJob = { v: 1, url, event: fields.event ?? "", body };
        await queues.get(p)?.add(JOB_DELIVER, job, {
          jobId: `${id}-${createHash("sha256").update(url).digest("hex").slice(0, 16)}`,
          attempts: deps.attempts,
          backoff: { type: "exponential", delay: deps.backoffMs, jitter: 0.5 },
          removeOnComplete: true,
          // failed deliveries stay, to be listed and replayed (DLQ)
          removeOnFail: false,
        });
      }
    }
    if (requestId && fields.state && isRequestState(fields.state) && isTerminal(fields.state)) {
      // the subscriptions go with the ended request (its other keys expire after the retention too)
      await store.redis.expire(keys.subscriptions(p, requestId), store.limits.retentionSeconds);
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
        const streams = deps.partitions.map((p) => keys.events(p));
        const res = (await reader.xreadgroup(
          "GROUP",
          WEBHOOK_GROUP,
          deps.consumer,
          "COUNT",
          200,
          "BLOCK",
          1000,
          "STREAMS",
          ...streams,
          ...streams.map(() => ">"),
        )) as [string, [string, string[]][]][] | null;
        for (const [stream, entries] of res ?? []) {
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

  async function deliver(job: { data: unknown; id?: string | undefined }): Promise<number> {
    const parsed = webhookJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(reasonMessage("invalid-payload", "invalid webhook job payload"));
    const { url, body, event } = parsed.data;
    const timestamp = String(Date.now());
    let status: number;
    try {
      status = await transport.post(
        url,
        {
          "content-type": "application/json",
          [WEBHOOK_HEADERS.timestamp]: timestamp,
          [WEBHOOK_HEADERS.signature]: signWebhook(deps.secret, timestamp, body),
          [WEBHOOK_HEADERS.id]: job.id ?? "",
          [WEBHOOK_HEADERS.event]: event,
        },
        body,
      );
    } catch (err) {
      // a refused target stays refused: straight to the dead letters, with the rule that refused it
      if (err instanceof WebhookAddressRefused) {
        throw new UnrecoverableError(reasonMessage("permanent-error", err.message));
      }
      throw err;
    }
    if (status < 200 || status >= 300) throw new Error(`receiver answered ${status}`);
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
      if (job && (err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1))) {
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
      reader.disconnect();
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
