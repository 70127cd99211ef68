import { loadBullmq } from "@ess/store";
import type * as BullMQ from "bullmq";

// The bullmq classes the worker runs, from their own modules rather than from bullmq's index (see
// loadBullmq): the worker holds none of the package's parts it never uses.
const classes = loadBullmq();

export const Worker = classes.Worker;
export type Worker = BullMQ.Worker;
export const Queue = classes.Queue;
export type Queue = BullMQ.Queue;
export const DelayedError = classes.DelayedError;
export type DelayedError = BullMQ.DelayedError;
export const UnrecoverableError = classes.UnrecoverableError;
export type UnrecoverableError = BullMQ.UnrecoverableError;
export type { Job } from "bullmq";
