import { CALLBACK_STATUSES, EssError, truncateMessage } from "@ess/domain";
import { z } from "zod";

/** Body of POST .../requests/{requestId}/executionStatus (ess-semantics §1). */
export const callbackBodySchema = z.strictObject({
  requestHandle: z.string().min(1, "requestHandle must not be empty"),
  status: z.enum(CALLBACK_STATUSES),
  statusMessage: z
    .string()
    .optional()
    .transform((m) => (m === undefined ? m : truncateMessage(m))),
});
export type CallbackBody = z.output<typeof callbackBodySchema>;

const STATUS_SET: ReadonlySet<string> = new Set(CALLBACK_STATUSES);

/**
 * Parses a callback body: the hot path's validator. A precompiled fast path accepts the common
 * well-formed body (exactly requestHandle + status, optionally statusMessage, all strings) without
 * zod's machinery; anything else, including every invalid body, goes through callbackBodySchema,
 * which stays the one source of the rules and of the error messages. The fast path accepts a strict
 * subset of what the schema accepts and returns what it would (pinned by schemas.test.ts).
 */
export function parseCallbackBody(value: unknown): CallbackBody {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const handle = o.requestHandle;
    const status = o.status;
    const message = o.statusMessage;
    if (typeof handle === "string" && handle.length > 0 && typeof status === "string" && STATUS_SET.has(status)) {
      // enumerable keys, inherited ones included (as zod's strictObject counts them): with the two or
      // three fields defined, n says there is nothing else
      let n = 0;
      for (const _ in o) n++;
      if (message === undefined && n === 2) {
        return { requestHandle: handle, status: status as CallbackBody["status"], statusMessage: undefined };
      }
      if (typeof message === "string" && n === 3) {
        return {
          requestHandle: handle,
          status: status as CallbackBody["status"],
          statusMessage: truncateMessage(message),
        };
      }
    }
  }
  return parseOrThrow(callbackBodySchema, value);
}

/** Printable ASCII, 1–255 characters: request handles given by a scheduler and Idempotency-Keys. */
export const tokenSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, "must be 1-255 printable ASCII characters without spaces");

/** A short descriptive text: no control characters (the job definition also keys the request index). */
const label = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\x00-\x1f\x7f]+$/, "must not contain control characters");

/** ESS parameter types of requestParameters. */
export const PARAM_TYPES = ["BOOLEAN", "LONG", "INTEGER", "DATETIME", "STRING"] as const;

const PARAM_VALUE_RULES: Record<(typeof PARAM_TYPES)[number], [RegExp, string]> = {
  BOOLEAN: [/^(true|false)$/, "true or false"],
  LONG: [/^-?[0-9]{1,19}$/, "an integer"],
  INTEGER: [/^-?[0-9]{1,10}$/, "an integer"],
  DATETIME: [/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?$/, "an ISO 8601 date-time"],
  STRING: [/^[\s\S]*$/, "a string"],
};

/** One ESS request parameter (name, paramType, value as text, optional scope). */
export const requestParameterSchema = z
  .strictObject({
    name: label(200),
    paramType: z.enum(PARAM_TYPES),
    value: z.string().max(2000),
    scope: label(200).optional(),
  })
  .superRefine((p, ctx) => {
    const [re, what] = PARAM_VALUE_RULES[p.paramType];
    if (!re.test(p.value))
      ctx.addIssue({ code: "custom", path: ["value"], message: `a ${p.paramType} value must be ${what}` });
  });

/**
 * ESS's descriptive fields of a request (RequestDetails names), each optional and bounded: stored at
 * registration and shown on read.
 */
export const requestMetadataShape = {
  jobDefinitionId: label(400).optional(),
  application: label(200).optional(),
  submitter: label(200).optional(),
  description: z.string().max(1000).optional(),
  /** ESS request priority; a smaller number runs first */
  priority: z.number().int().min(0).max(1000).optional(),
  requestType: label(100).optional(),
  requestParameters: z.array(requestParameterSchema).max(50).optional(),
};

/** Body of POST /gateway/v1/requests/{requestId}/executions (registration, our API). */
export const registrationBodySchema = z.strictObject({
  ...requestMetadataShape,
  requestHandle: tokenSchema.optional(),
  maxRetries: z.number().int().min(0).max(1000).optional(),
  /** minutes without a callback or check-in before the request is marked timed out (fractions allowed) */
  requestTimeout: z
    .number()
    .positive()
    .max(60 * 24 * 366)
    .optional(),
  resumed: z.boolean().optional(),
});
export type RegistrationBody = z.output<typeof registrationBodySchema>;

// the callback job's field rules, shared by its schema and the worker's fast path (safeParseCallbackBatchJob)
const JOB_REQUEST_ID = /^[1-9][0-9]{0,18}$/;
const JOB_MESSAGE_MAX = 4000;
const JOB_TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const BATCH_MAX = 10000;

/**
 * The one contract between gateway and worker: the data of a callback job. It carries no handle
 * (the gateway checked it; the worker only needs the execution number). The worker re-validates it.
 */
export const callbackJobSchema = z.strictObject({
  v: z.literal(1),
  requestId: z.string().regex(JOB_REQUEST_ID),
  seq: z.number().int().min(1),
  execution: z.number().int().min(1),
  status: z.enum(CALLBACK_STATUSES),
  message: z.string().max(JOB_MESSAGE_MAX).optional(),
  /** ms since the epoch, when the gateway admitted it */
  acceptedAt: z.number().int().min(0),
  /** W3C traceparent of the gateway's admit span, when tracing is on: the worker's apply joins that trace */
  traceparent: z.string().regex(JOB_TRACEPARENT).optional(),
});
export type CallbackJob = z.output<typeof callbackJobSchema>;

/**
 * The data of a batch job: several callback jobs of one partition, admitted by the gateway in one
 * event-loop turn and applied by the worker in one script call, in this order. Each one stays the
 * callback job it would be on its own (its dead letter and replay are that job, id `<requestId>-<seq>`).
 */
export const callbackBatchJobSchema = z.strictObject({
  v: z.literal(1),
  callbacks: z.array(callbackJobSchema).min(1).max(BATCH_MAX),
});
export type CallbackBatchJob = z.output<typeof callbackBatchJobSchema>;

const positiveInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 1;

/** A callback job exactly as callbackJobSchema outputs it, or undefined when the fast path cannot vouch for it. */
function fastCallbackJob(value: unknown): CallbackJob | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const { requestId, seq, execution, status, message, acceptedAt, traceparent } = o;
  if (
    o.v !== 1 ||
    typeof requestId !== "string" ||
    !JOB_REQUEST_ID.test(requestId) ||
    !positiveInt(seq) ||
    !positiveInt(execution) ||
    typeof status !== "string" ||
    !STATUS_SET.has(status) ||
    !(Number.isSafeInteger(acceptedAt) && (acceptedAt as number) >= 0)
  )
    return undefined;
  if (message !== undefined && !(typeof message === "string" && message.length <= JOB_MESSAGE_MAX)) return undefined;
  if (traceparent !== undefined && !(typeof traceparent === "string" && JOB_TRACEPARENT.test(traceparent)))
    return undefined;
  // enumerable keys, inherited ones included (as zod's strictObject counts them): nothing but the fields above
  let n = 0;
  for (const _ in o) n++;
  if (n !== 6 + (message === undefined ? 0 : 1) + (traceparent === undefined ? 0 : 1)) return undefined;
  const job: CallbackJob = {
    v: 1,
    requestId,
    seq,
    execution,
    status: status as CallbackJob["status"],
  } as CallbackJob;
  if (message !== undefined) job.message = message as string;
  job.acceptedAt = acceptedAt as number;
  if (traceparent !== undefined) job.traceparent = traceparent as string;
  return job;
}

/**
 * callbackBatchJobSchema.safeParse, the worker's per-job validation: a fast path checks the well-formed
 * batch field by field without zod's machinery (a batch carries tens of callbacks); anything it cannot
 * vouch for, every invalid batch included, goes through the schema, which stays the one source of the
 * rules and of the error. It accepts a subset of what the schema accepts and returns what it would
 * (pinned by schemas.test.ts).
 */
export function safeParseCallbackBatchJob(
  value: unknown,
): { success: true; data: CallbackBatchJob } | ReturnType<typeof callbackBatchJobSchema.safeParse> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const list = o.callbacks;
    let n = 0;
    for (const _ in o) n++;
    if (o.v === 1 && n === 2 && Array.isArray(list) && list.length >= 1 && list.length <= BATCH_MAX) {
      const callbacks: CallbackJob[] = [];
      for (const item of list) {
        const job = fastCallbackJob(item);
        if (job === undefined) break;
        callbacks.push(job);
      }
      if (callbacks.length === list.length) return { success: true, data: { v: 1, callbacks } };
    }
  }
  return callbackBatchJobSchema.safeParse(value);
}

/** Builds a human-readable detail naming the offending fields of a failed parse. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      if (issue.code === "unrecognized_keys") {
        return `unknown propert${issue.keys.length > 1 ? "ies" : "y"} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
      }
      const path = issue.path.length > 0 ? issue.path.join(".") : "body";
      if (issue.code === "invalid_value" && path === "status") {
        return `status must be one of ${CALLBACK_STATUSES.join(", ")}`;
      }
      if (issue.code === "invalid_type") {
        return issue.message.endsWith("received undefined")
          ? `${path} is required`
          : `${path} must be ${issue.expected === "object" ? "a JSON object" : `a ${issue.expected}`}`;
      }
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

/** The 400 EssError of a failed parse: UNKNOWN_PROPERTY or INVALID_BODY, naming what was wrong. */
export function invalidInput(error: z.ZodError): EssError {
  const unknown = error.issues.some((i) => i.code === "unrecognized_keys");
  return new EssError(unknown ? "UNKNOWN_PROPERTY" : "INVALID_BODY", describeIssues(error));
}

/** Parses with a schema or throws the matching 400 EssError naming what was wrong. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidInput(result.error);
}
