import type { CallbackJob } from "@ess/contract";
import { type JobsOptions, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { CALLBACK_QUEUE, callbackJobId, type Keys } from "./keys.js";

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

/** One BullMQ queue per partition, prefix `<prefix>:{pN}`, created on first use. */
export class CallbackQueues {
  private readonly queues = new Map<number, Queue>();

  constructor(
    private readonly connection: Redis,
    readonly keys: Keys,
    readonly policy: JobPolicy,
  ) {}

  /** The queue of partition p. */
  queue(p: number): Queue {
    let q = this.queues.get(p);
    if (!q) {
      q = new Queue(CALLBACK_QUEUE, { connection: this.connection, prefix: this.keys.tag(p) });
      // errors surface on the add() promise; without a listener they would crash the process
      q.on("error", () => {});
      this.queues.set(p, q);
    }
    return q;
  }

  /** Adds an admitted callback to its partition's queue; resolves once Redis has it. */
  async add(partition: number, job: CallbackJob): Promise<void> {
    await this.queue(partition).add(JOB_CALLBACK, job, callbackJobOptions(job, this.policy));
  }

  /** All partition queues (created if needed): for dashboards, metrics and shutdown. */
  all(): Queue[] {
    for (let p = 0; p < this.keys.partitions; p++) this.queue(p);
    return [...this.queues.values()];
  }

  /** Closes the queues (not the shared connection). */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
