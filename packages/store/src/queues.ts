import { createRequire } from "node:module";
import type { CallbackJob } from "@ess/contract";
import type * as BullMQ from "bullmq";
import type { JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { bullmqQueueKeys, CALLBACK_QUEUE, callbackJobId, type Keys, OPS_QUEUE } from "./keys.js";
import { defineScripts } from "./scripts.js";

/** Retry policy of callback jobs; from the configuration. */
export interface JobPolicy {
  attempts: number;
  backoffMs: number;
}

/** Job names on a partition queue. */
export const JOB_CALLBACK = "cb";
/** A job carrying several callbacks of one partition (data: CallbackBatchJob), applied by one script call. */
export const JOB_BATCH = "batch";
export const JOB_GAP = "gap";

/** Options of every callback job: the one place they are decided (gateway and replays use it). */
export function callbackJobOptions(job: CallbackJob, policy: JobPolicy): JobsOptions {
  return {
    jobId: callbackJobId(job.requestId, job.seq),
    attempts: policy.attempts,
    backoff: { type: "exponential", delay: policy.backoffMs, jitter: 0.5 },
    // finished jobs leave Redis; failed ones stay until the worker moved them to the dead letters
    removeOnComplete: true,
    removeOnFail: false,
  };
}

/**
 * What the admit-enqueue script needs to add a callback job to partition N's queue exactly as
 * Queue.add would: the queue's keys in addStandardJob's order and the job options.
 */
export interface EnqueueTemplate {
  /** wait, paused, meta, id, completed, delayed, active, events, marker */
  keys: string[];
  /** BullMQ's queueKeys[''] (`<prefix>:{pN}:callbacks:`), the prefix of job hashes */
  jobPrefix: string;
  /**
   * the job options Queue.add would pack (msgpack), as JSON; the script sets each job's jobId. JSON is
   * all ASCII, so the call goes to ioredis as strings only, which it encodes as one string (a Buffer
   * argument switches it to encoding every argument into a Buffer piece by piece, about twice the
   * cost per call). A test checks that they decode to what Queue.add packs.
   */
  jsonOpts: string;
}

/** The keys addStandardJob takes, in its order (BullMQ's addStandardJobArgs). */
const ADD_STANDARD_JOB_KEYS = ["wait", "paused", "meta", "id", "completed", "delayed", "active", "events", "marker"];

/** A job state as Queue.getJobCounts names it ("waiting" is BullMQ's other name of "wait"). */
export type QueueState =
  | "wait"
  | "waiting"
  | "paused"
  | "active"
  | "delayed"
  | "prioritized"
  | "failed"
  | "completed"
  | "waiting-children";

/** A BullMQ queue by name: its prefix and name, enough to read its keys without a Queue object. */
export interface QueueRef {
  prefix: string;
  name: string;
}

/** What CallbackQueues.counts reads from a queue in one call. */
export interface QueueCounts<S extends QueueState> {
  /** jobs per state, as Queue.getJobCounts answers for the same states */
  counts: Record<S, number>;
  /** the timestamp (ms) of the oldest waiting job (Queue.getJobs(["wait"], 0, 0, true)); undefined when none waits */
  oldestWaitingAt: number | undefined;
}

const requireCjs = createRequire(import.meta.url);

/** The bullmq classes the project runs. */
export interface BullmqClasses {
  Queue: typeof BullMQ.Queue;
  Worker: typeof BullMQ.Worker;
  DelayedError: typeof BullMQ.DelayedError;
  UnrecoverableError: typeof BullMQ.UnrecoverableError;
}
let bullmq: BullmqClasses | undefined;

/**
 * bullmq's Queue, Worker and the two errors a processor throws, loaded on first use. The gateway's
 * callback path is one script call (admit-enqueue) and it reads queue counts with its own script: it
 * needs BullMQ's Queue only for replays, webhook redeliveries and the dashboard, so a gateway that
 * does none of them never loads bullmq.
 *
 * Each class is required from its own module of bullmq's CommonJS build, not from the package's
 * index: the index also evaluates what the project never runs (the PostgreSQL backend and its SQL,
 * flows, sandboxed processors, the relay, the other Redis clients' adapters), about 1 MiB of heap
 * in every worker. The index is what `import "bullmq"` loads (it has no ESM entry for Node) and it
 * re-exports these same modules, so the classes are the same ones whichever way they are reached.
 */
export function loadBullmq(): BullmqClasses {
  bullmq ??= {
    Queue: (requireCjs("bullmq/dist/cjs/classes/queue.js") as typeof BullMQ).Queue,
    Worker: (requireCjs("bullmq/dist/cjs/classes/worker.js") as typeof BullMQ).Worker,
    DelayedError: (requireCjs("bullmq/dist/cjs/classes/errors/delayed-error.js") as typeof BullMQ).DelayedError,
    UnrecoverableError: (requireCjs("bullmq/dist/cjs/classes/errors/unrecoverable-error.js") as typeof BullMQ)
      .UnrecoverableError,
  };
  return bullmq;
}

/**
 * BullMQ queues: per partition (prefix `<prefix>:{pN}`) and the ops queue, created on first use (and
 * bullmq loaded then). Their counts, read by a script of the project on BullMQ's keys, and the
 * enqueue templates need no Queue object.
 */
export class CallbackQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly templates = new Map<number, EnqueueTemplate>();
  private jsonOpts: string | undefined;
  private readonly scripted: ReturnType<typeof defineScripts>;

  constructor(
    private readonly connection: Redis,
    readonly keys: Keys,
    readonly policy: JobPolicy,
  ) {
    this.scripted = defineScripts(connection);
  }

  /** The queue `name` (default: the callback queue) of partition p. */
  queue(p: number, name: string = CALLBACK_QUEUE): Queue {
    return this.named(this.keys.tag(p), name);
  }

  /** The queue of cross-partition operations (bulk replays). */
  ops(): Queue {
    return this.named(this.keys.opsTag(), OPS_QUEUE);
  }

  /** The queue `name` (default: the callback queue) of partition p, by name only (no Queue object). */
  ref(p: number, name: string = CALLBACK_QUEUE): QueueRef {
    return { prefix: this.keys.tag(p), name };
  }

  /** The ops queue by name only. */
  opsRef(): QueueRef {
    return { prefix: this.keys.opsTag(), name: OPS_QUEUE };
  }

  /** The Queue object of a queue named by ref (created on first use). */
  of(ref: QueueRef): Queue {
    return this.named(ref.prefix, ref.name);
  }

  private named(prefix: string, name: string): Queue {
    const id = `${prefix}:${name}`;
    let q = this.queues.get(id);
    if (!q) {
      const { Queue } = loadBullmq();
      q = new Queue(name, { connection: this.connection, prefix });
      // errors surface on the add() promise; without a listener they would crash the process
      q.on("error", () => {});
      this.queues.set(id, q);
      // BullMQ sets a Queue's connection up once (a version check) and keeps a failure for good: every
      // later call would fail with it. Such a Queue is dropped, so the next call builds a new one. (On a
      // Cluster without an offline queue, a node connection still opening refuses the check: waitReady
      // before building the queues.)
      const built = q;
      built.waitUntilReady().catch(() => {
        if (this.queues.get(id) !== built) return;
        this.queues.delete(id);
        built.close().catch(() => {});
      });
    }
    return q;
  }

  /**
   * Job counts of a queue by state, as Queue.getJobCounts answers them, and its oldest waiting job's
   * timestamp: one read-only script call on BullMQ's keys (queueCounts-1.lua).
   */
  async counts<S extends QueueState>(ref: QueueRef, states: readonly S[]): Promise<QueueCounts<S>> {
    const base = bullmqQueueKeys(ref.prefix, ref.name)[""] as string;
    const reply = (await this.scripted.ess_queueCounts(
      base,
      ...states.map((s) => (s === "waiting" ? "wait" : s)),
    )) as number[];
    const counts = {} as Record<S, number>;
    states.forEach((s, i) => {
      counts[s] = Number(reply[i] ?? 0);
    });
    const oldest = Number(reply[states.length] ?? -1);
    return { counts, oldestWaitingAt: oldest >= 0 ? oldest : undefined };
  }

  /** Adds an admitted callback to its partition's queue; resolves once Redis has it. */
  async add(partition: number, job: CallbackJob): Promise<void> {
    await this.queue(partition).add(JOB_CALLBACK, job, callbackJobOptions(job, this.policy));
  }

  /**
   * The enqueue template of partition p: BullMQ's keys of the partition's callback queue in
   * addStandardJob's order, and the options of a callback job as Queue.add takes them (the Job
   * constructor's `{ attempts: 0, ...opts }`, as JSON; the same for every partition, the script sets
   * each job's jobId). Computed without bullmq and without waiting, on
   * first use, so a call is sent to Redis in the order it was made; a test checks the template against
   * what Queue.add sends.
   */
  template(p: number): EnqueueTemplate {
    const cached = this.templates.get(p);
    if (cached) return cached;
    if (this.jsonOpts === undefined) {
      const sample: CallbackJob = { v: 1, requestId: "1", seq: 1, execution: 1, status: "UPDATE", acceptedAt: 0 };
      this.jsonOpts = JSON.stringify({ attempts: 0, ...callbackJobOptions(sample, this.policy) });
    }
    const queueKeys = this.keys.queueKeys(p);
    const jobPrefix = this.keys.jobPrefix(p);
    if (queueKeys[""] !== jobPrefix) throw new Error(`BullMQ's key prefix ${queueKeys[""]} is not ${jobPrefix}`);
    const template = {
      keys: ADD_STANDARD_JOB_KEYS.map((k) => queueKeys[k] as string),
      jobPrefix,
      jsonOpts: this.jsonOpts,
    };
    this.templates.set(p, template);
    return template;
  }

  /** The callback queue of every partition (created if needed): for dashboards, metrics and sweeps. */
  all(): Queue[] {
    return Array.from({ length: this.keys.partitions }, (_, p) => this.queue(p));
  }

  /** Closes the queues (not the shared connection). */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
