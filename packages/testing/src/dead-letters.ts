import type { FailedJob } from "@ess/store";

/** A failed callback job as BullMQ hands it over, for seeding the dead letters of a test. */
export function failedJob(
  requestId: string,
  seq: number,
  status: string,
  overrides: Partial<FailedJob> = {},
): FailedJob {
  return {
    id: `${requestId}-${seq}`,
    name: "cb",
    data: { v: 1, requestId, seq, execution: 1, status, acceptedAt: 1 },
    opts: { attempts: 3, removeOnComplete: true },
    failedReason: "timeout",
    attemptsMade: 3,
    timestamp: 1,
    queueName: "callbacks",
    remove: async () => {},
    ...overrides,
  };
}
