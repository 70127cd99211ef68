import type { CallbackJob } from "@ess/contract";
import { type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CALLBACK_QUEUE, callbackJobId, type Keys, OPS_QUEUE } from "./keys.js";

/** Retry policy of callback jobs; from the configuration. */
export interface JobPolicy {
  attempts: number;
  backoffMs: number;
}

/** Job names on a partition queue. */
export const JOB_CALLBACK = "cb";
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

/** BullMQ queues: per partition (prefix `<prefix>:{pN}`) and the ops queue; created on first use. */
export class CallbackQueues {
  private readonly queues = new Map<string, Queue>();

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
    }
    return q;
  }

  /** Adds an admitted callback to its partition's queue; resolves once Redis has it. */
  async add(partition: number, job: CallbackJob): Promise<void> {
    await this.queue(partition).add(JOB_CALLBACK, job, callbackJobOptions(job, this.policy));
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
