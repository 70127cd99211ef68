import type { CallbackJob } from "@ess/contract";
import { Job, type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CALLBACK_QUEUE, callbackJobId, type Keys, OPS_QUEUE } from "./keys.js";

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
 * Queue.add would: the queue's keys in addStandardJob's order and BullMQ's encoding of the options.
 */
export interface EnqueueTemplate {
  /** wait, paused, meta, id, completed, delayed, active, events, marker */
  keys: string[];
  /** BullMQ's queueKeys[''] (`<prefix>:{pN}:callbacks:`), the prefix of job hashes */
  jobPrefix: string;
  /** the job options as Queue.add packs them (msgpack); the script sets each job's jobId */
  encodedOpts: Buffer;
}

/** The part of BullMQ's (internal) Redis backend the template capture uses. */
interface AddJobBackend {
  addJobToTransaction(
    client: { runCommand(name: string, args: unknown[]): Promise<unknown> },
    job: unknown,
    jobId: string | undefined,
  ): Promise<unknown>;
}

/** BullMQ queues: per partition (prefix `<prefix>:{pN}`) and the ops queue; created on first use. */
export class CallbackQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly templates = new Map<number, EnqueueTemplate>();

  constructor(
    private readonly connection: Redis,
    readonly keys: Keys,
    readonly policy: JobPolicy,
  ) {}

  /** The queue `name` (default: the callback queue) of partition p. */
  queue(p: number, name: string = CALLBACK_QUEUE): Queue {
    return this.named(this.keys.tag(p), name);
  }

  /** The queue of cross-partition operations (bulk replays). */
  ops(): Queue {
    return this.named(this.keys.opsTag(), OPS_QUEUE);
  }

  private named(prefix: string, name: string): Queue {
    const id = `${prefix}:${name}`;
    let q = this.queues.get(id);
    if (!q) {
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

  /** Adds an admitted callback to its partition's queue; resolves once Redis has it. */
  async add(partition: number, job: CallbackJob): Promise<void> {
    await this.queue(partition).add(JOB_CALLBACK, job, callbackJobOptions(job, this.policy));
  }

  /** The enqueue template of partition p if already computed (the hot path avoids an await). */
  readyTemplate(p: number): EnqueueTemplate | undefined {
    return this.templates.get(p);
  }

  /**
   * The enqueue template of partition p, computed once by running BullMQ's own Queue.add code path
   * (Job, asJSON, validateOptions, addJobToTransaction) against a recording client instead of Redis,
   * so the options are encoded by BullMQ itself, never by a copy of its code.
   */
  async template(p: number): Promise<EnqueueTemplate> {
    const cached = this.templates.get(p);
    if (cached) return cached;
    const queue = this.queue(p);
    const sample: CallbackJob = { v: 1, requestId: "1", seq: 1, execution: 1, status: "UPDATE", acceptedAt: 0 };
    const opts = callbackJobOptions(sample, this.policy);
    // as Queue.addJob merges them
    const jobId = callbackJobId(sample.requestId, sample.seq);
    const merged: JobsOptions = { ...(queue as unknown as { jobsOpts: JobsOptions }).jobsOpts, ...opts, jobId };
    const job = new Job(queue, JOB_CALLBACK, sample, merged, jobId);
    const json = job.asJSON();
    (job as unknown as { validateOptions(j: unknown): void }).validateOptions(json);
    let command = "";
    let args: unknown[] = [];
    const recorder = {
      runCommand(name: string, a: unknown[]) {
        command = name;
        args = a;
        return Promise.resolve(jobId);
      },
    };
    await (queue as unknown as { backend: AddJobBackend }).backend.addJobToTransaction(recorder, json, job.id);
    const jobPrefix = this.keys.jobPrefix(p);
    const keys = args.slice(0, 9);
    if (
      !command.startsWith("addStandardJob") ||
      args.length !== 12 ||
      !keys.every((k) => typeof k === "string" && k.startsWith(jobPrefix)) ||
      !Buffer.isBuffer(args[11]) ||
      queue.keys[""] !== jobPrefix
    ) {
      throw new Error(`bullmq's Queue.add no longer runs addStandardJob as expected (${command}/${args.length})`);
    }
    const template = { keys: keys as string[], jobPrefix, encodedOpts: args[11] as Buffer };
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
