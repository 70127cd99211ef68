import * as crypto from "node:crypto";
import { type CallbackJob, REQUEST_METADATA_FIELDS } from "@ess/contract";
import type { CallbackStatus, RequestState } from "@ess/domain";
import type { Redis } from "ioredis";
import { decodeReply } from "./codes.js";
import { decodeHistory, HISTORY_HEAD_FIELD } from "./history-codec.js";
import type { Keys } from "./keys.js";
import { type CallbackQueues, JOB_BATCH, JOB_CALLBACK } from "./queues.js";
import { isCluster } from "./redis.js";
import { callScriptFlat, defineScripts, type ScriptedRedis } from "./scripts.js";

/** Limits the scripts apply; from the configuration. */
export interface StoreLimits {
  historyLimit: number;
  eventsMaxLen: number;
  retentionSeconds: number;
  gapTimeoutMs: number;
  idempotencyTtlSeconds: number;
}

export const DEFAULT_LIMITS: StoreLimits = {
  historyLimit: 50,
  eventsMaxLen: 100000,
  retentionSeconds: 7 * 86400,
  gapTimeoutMs: 30000,
  idempotencyTtlSeconds: 86400,
};

/**
 * Default in-flight lease of an Idempotency-Key in ENQUEUE_MODE=queue: a repeat within it gets 409,
 * a repeat after it resumes the call under its first seq (its gateway is presumed dead).
 */
export const DEFAULT_IDEMPOTENCY_LEASE_MS = 5000;

/**
 * sha256 hex: handles are stored and compared only as digests. crypto.hash (Node >= 20.12) is the
 * one-shot form, about 2.5x cheaper than a Hash object on the gateway's hot path.
 */
export function digest(value: string): string {
  // a namespace lookup, not a named import: older Node 20 releases have no `hash` export
  return typeof crypto.hash === "function"
    ? crypto.hash("sha256", value, "hex")
    : crypto.createHash("sha256").update(value).digest("hex");
}

/** An Idempotency-Key and the fingerprint of the callback's content. */
export interface Idempotency {
  key: string;
  fingerprint: string;
}

export type AdmitResult =
  | {
      kind: "admitted";
      partition: number;
      seq: number;
      execution: number;
      cancelling: boolean;
      /** a repeat that took over a call its gateway did not finish: same seq, enqueue it again */
      resumed: boolean;
    }
  | { kind: "repeat"; cancelling: boolean };

/** What the apply script reports for one job. */
export interface ApplyResult {
  result: "applied" | "late" | "ignored" | "duplicate" | "buffered" | "skipped" | "wait" | "closed" | "gone";
  /** lowest missing seq while later callbacks wait in the buffer, else 0 */
  missing: number;
  /** callbacks drained from the buffer ('wait': ms to wait) */
  n: number;
  /**
   * the missing seq is queued inside a batch job (its in-flight marker): that job applies it or its
   * dead letter comes with a gap check, so no gap check is needed now (see needsGapCheck); absent else
   */
  held?: true;
}

/** Whether an apply's result asks for a gap check of its missing seq. */
export function needsGapCheck(res: ApplyResult): boolean {
  return res.missing > 0 && res.held !== true;
}

export interface RegisterResult {
  created: boolean;
  execution: number;
  pausedState: string | null;
}

/**
 * ESS's descriptive fields of a request, given at registration and shown on read (validated and
 * bounded by the contract's registration schema). Stored in the request hash under these names,
 * requestParameters as JSON.
 */
export interface RequestMetadata {
  jobDefinitionId?: string | undefined;
  application?: string | undefined;
  submitter?: string | undefined;
  description?: string | undefined;
  priority?: number | undefined;
  requestType?: string | undefined;
  requestParameters?:
    | readonly { name: string; paramType: string; value: string; scope?: string | undefined }[]
    | undefined;
}

/** The metadata fields, as stored in the request hash. */
export const METADATA_FIELDS = REQUEST_METADATA_FIELDS satisfies readonly (keyof RequestMetadata)[];

/** The register script's metadata argument: the given fields as a flat JSON object, or ''. */
function metadataArg(m: RequestMetadata | undefined): string {
  if (!m) return "";
  const out: Record<string, string | number> = {};
  for (const k of METADATA_FIELDS) {
    const v = m[k];
    if (v === undefined) continue;
    out[k] = k === "requestParameters" ? JSON.stringify(v) : (v as string | number);
  }
  return Object.keys(out).length === 0 ? "" : JSON.stringify(out);
}

/** A request as stored: the hash fields (strings) and the history, newest first. */
export interface StoredRequest {
  fields: Record<string, string>;
  history: Record<string, unknown>[];
}

/** A callback as the admit-and-enqueue scripts take it. */
export interface AdmitCallback {
  requestId: string;
  handle: string;
  status: CallbackStatus;
  message?: string | undefined;
  acceptedAt: number;
  /** the trace the worker's apply joins (CallbackJob.traceparent) */
  traceparent?: string | undefined;
}

/** The callback job's data after requestId, seq and execution (which the script adds), as a JSON object. */
function jobRest(cb: AdmitCallback): string {
  const trace = cb.traceparent === undefined ? "" : `,"traceparent":${JSON.stringify(cb.traceparent)}`;
  return cb.message === undefined
    ? `{"status":"${cb.status}","acceptedAt":${cb.acceptedAt}${trace}}`
    : `{"status":"${cb.status}","message":${JSON.stringify(cb.message)},"acceptedAt":${cb.acceptedAt}${trace}}`;
}

/** Maps the admit scripts' reply to a result, or throws the EssError its code names. */
function toAdmitResult(requestId: string, p: number, reply: (string | number | null)[]): AdmitResult {
  const code = decodeReply(reply, { requestId });
  const cancelling = reply[3] === 1;
  switch (code) {
    case "ADMITTED":
    case "RESUMED":
      return {
        kind: "admitted",
        partition: p,
        seq: Number(reply[1]),
        execution: Number(reply[2]),
        cancelling,
        resumed: code === "RESUMED",
      };
    case "REPEAT":
      return { kind: "repeat", cancelling };
    default:
      throw new Error(`admit script replied ${code}`);
  }
}

/**
 * Typed access to a request's Redis keys through the Lua scripts. Transport-agnostic: failures are
 * EssErrors with a code; Redis errors propagate as they are (the caller decides 503 or retry).
 */
export class RequestStore {
  readonly redis: ScriptedRedis;
  /** true on Redis Cluster, where a script's keys must share one slot (one partition) */
  readonly clustered: boolean;

  constructor(
    redis: Redis,
    readonly keys: Keys,
    readonly limits: StoreLimits = DEFAULT_LIMITS,
  ) {
    this.redis = defineScripts(redis);
    this.clustered = isCluster(redis);
  }

  /**
   * The batch group of partition p: callbacks of one group may share one admit call, one batch job and
   * one apply call (admitAndEnqueueBatch, applyBatch). On a single Redis every partition is in group 0,
   * so a batch gathers all the callbacks that reach the admit together whatever their partition; on
   * Redis Cluster each partition is a group of its own (a script's keys must share one slot).
   */
  batchGroup(p: number): number {
    return this.clustered ? p : 0;
  }

  /** How many partitions one batch group spans: all on a single Redis, one on Redis Cluster. */
  batchGroupPartitions(): number {
    return this.clustered ? 1 : this.keys.partitions;
  }

  /** The batch group of a request's partition. */
  batchGroupOf(requestId: string): number {
    return this.batchGroup(this.keys.partition(requestId));
  }

  /**
   * The gateway's admit decision (404/403/idempotency) and sequence number, in one script.
   * `idempotency`: the Idempotency-Key and the fingerprint of the callback's content; an admitted
   * call leaves a pending record for `leaseMs` that `completeIdempotency` makes final once its job is
   * in the queue. A repeat after the lease is answered "admitted" with `resumed` and the first seq.
   */
  async admit(
    requestId: string,
    handle: string,
    status: CallbackStatus,
    idempotency?: Idempotency,
    leaseMs = DEFAULT_IDEMPOTENCY_LEASE_MS,
  ): Promise<AdmitResult> {
    const p = this.keys.partition(requestId);
    const [req, idem] = this.keys.admitKeys(p, requestId, idempotency?.key);
    const reply = await this.redis.ess_admit(
      req,
      idem,
      digest(handle),
      status,
      idempotency?.fingerprint ?? "",
      this.limits.idempotencyTtlSeconds,
      leaseMs,
    );
    return toAdmitResult(requestId, p, reply);
  }

  /**
   * admit and enqueue in one script (admit-enqueue-11): the admit decision of `admit`, and for an
   * admitted callback BullMQ's own addStandardJob on the partition queue, in one round trip. The job
   * is the one `queues.add` would add (same id, data, options); resolves only after Redis has it.
   * An Idempotency-Key's final record is written by the same script: there is no in-flight window.
   */
  async admitAndEnqueue(queues: CallbackQueues, cb: AdmitCallback, idempotency?: Idempotency): Promise<AdmitResult> {
    const { requestId } = cb;
    const p = this.keys.partition(requestId);
    const template = queues.template(p);
    const [req, idem] = this.keys.admitKeys(p, requestId, idempotency?.key);
    const rest = jobRest(cb);
    const k = template.keys;
    const reply = await this.redis.ess_admitEnqueue(
      req,
      idem,
      k[0]!,
      k[1]!,
      k[2]!,
      k[3]!,
      k[4]!,
      k[5]!,
      k[6]!,
      k[7]!,
      k[8]!,
      digest(cb.handle),
      cb.status,
      idempotency?.fingerprint ?? "",
      this.limits.idempotencyTtlSeconds,
      template.jobPrefix,
      requestId,
      JOB_CALLBACK,
      cb.acceptedAt,
      rest,
      template.jsonOpts,
    );
    return toAdmitResult(requestId, p, reply);
  }

  /**
   * The callbacks of one batch group (batchGroup), admitted and enqueued in one script call
   * (admit-enqueue-batch): each gets the answer `admitAndEnqueue` would give it (an AdmitResult, or the
   * EssError of its refusal), in order. The jobs go to the queue of the first callback's partition: one
   * admitted callback of that partition becomes exactly admitAndEnqueue's job; otherwise the admitted
   * ones become one batch job (JOB_BATCH) with an in-flight marker each in its own partition. A Redis
   * error rejects the whole call. The caller never passes two callbacks of one request with the same
   * Idempotency-Key.
   */
  async admitAndEnqueueBatch(
    queues: CallbackQueues,
    cbs: readonly { cb: AdmitCallback; idempotency?: Idempotency | undefined }[],
  ): Promise<(AdmitResult | Error)[]> {
    if (cbs.length === 0) return [];
    const q = this.keys.partition((cbs[0] as { cb: AdmitCallback }).cb.requestId);
    const group = this.batchGroup(q);
    const template = queues.template(q);
    const keys: string[] = [...template.keys];
    const args: (string | number | Buffer)[] = [
      template.jobPrefix,
      template.jsonOpts,
      this.limits.idempotencyTtlSeconds,
      JOB_CALLBACK,
      JOB_BATCH,
    ];
    const partitions: number[] = [];
    for (const { cb, idempotency } of cbs) {
      const { requestId } = cb;
      const p = this.keys.partition(requestId);
      if (this.batchGroup(p) !== group) throw new Error(`request ${requestId} is not of batch group ${group}`);
      partitions.push(p);
      keys.push(...this.keys.admitKeys(p, requestId, idempotency?.key), this.keys.inflight(p));
      args.push(digest(cb.handle), cb.status, idempotency?.fingerprint ?? "", requestId, cb.acceptedAt, jobRest(cb));
    }
    const reply = await callScriptFlat(this.redis, "admitEnqueueBatch", keys, args);
    return cbs.map(({ cb }, i) => {
      try {
        return toAdmitResult(cb.requestId, partitions[i] as number, reply.slice(4 * i, 4 * i + 4));
      } catch (err) {
        return err as Error;
      }
    });
  }

  /** Marks an Idempotency-Key as answered 200, for the configured window (ENQUEUE_MODE=queue, after the add). */
  async completeIdempotency(requestId: string, key: string, fingerprint: string, seq: number): Promise<void> {
    const p = this.keys.partition(requestId);
    await this.redis.set(
      this.keys.idempotency(p, requestId, key),
      `${fingerprint}|${seq}|done`,
      "EX",
      this.limits.idempotencyTtlSeconds,
    );
  }

  /** Creates or re-arms a request in RUNNING under a new handle, and arms its requestTimeout, in one script. */
  async register(
    requestId: string,
    handle: string,
    opts: {
      maxRetries?: number | undefined;
      requestTimeout?: number | undefined;
      resumed?: boolean | undefined;
      metadata?: RequestMetadata | undefined;
      /** a re-arm from the operator console: the request must exist, and its history names the actor */
      operator?: { action: string; actor: string; reason: string } | undefined;
    },
  ): Promise<RegisterResult> {
    const p = this.keys.partition(requestId);
    const reply = await this.redis.ess_register(
      this.keys.request(p, requestId),
      this.keys.history(p, requestId),
      this.keys.events(p),
      this.keys.deadlines(p),
      this.keys.requestIndex(p),
      digest(handle),
      Date.now(),
      opts.maxRetries ?? "",
      opts.requestTimeout ?? "",
      opts.resumed ? "1" : "0",
      this.limits.historyLimit,
      this.limits.eventsMaxLen,
      requestId,
      metadataArg(opts.metadata),
      opts.operator ? JSON.stringify(opts.operator) : "",
    );
    const code = decodeReply(reply, { requestId });
    if (code !== "CREATED" && code !== "REARMED") throw new Error(`register script replied ${code}`);
    return {
      created: code === "CREATED",
      execution: Number(reply[1]),
      pausedState: typeof reply[3] === "string" ? reply[3] : null,
    };
  }

  /** Applies one callback job (mode 'cb') or checks an open sequence gap (mode 'gap'). */
  async apply(
    requestId: string,
    mode: "cb" | "gap",
    arg: CallbackJob | number,
    now = Date.now(),
  ): Promise<ApplyResult> {
    const p = this.keys.partition(requestId);
    const keys = this.keys.applyKeys(p, requestId);
    const gap =
      mode === "gap"
        ? await this.readGap(p, requestId, keys[0] as string, keys[1] as string)
        : { from: 0, jobKeys: [] };
    const reply = await this.redis.ess_apply(
      8 + gap.jobKeys.length,
      ...keys,
      ...gap.jobKeys,
      mode,
      typeof arg === "number" ? arg : JSON.stringify(arg),
      now,
      this.limits.historyLimit,
      this.limits.eventsMaxLen,
      this.limits.retentionSeconds,
      this.limits.gapTimeoutMs,
      gap.from,
      requestId,
    );
    return {
      result: reply[0] as ApplyResult["result"],
      missing: Number(reply[1]),
      n: Number(reply[2]),
      ...(reply[3] === 1 ? { held: true } : {}),
    };
  }

  /**
   * Applies the callbacks of one batch job (all of one batch group, in this order) in one script call
   * (apply-batch): each exactly as `apply(…, "cb", job)` would, with its own partition's keys, and its
   * in-flight marker cleared in the same step. One result per callback, in order.
   */
  async applyBatch(jobs: readonly CallbackJob[], now = Date.now()): Promise<ApplyResult[]> {
    if (jobs.length === 0) return [];
    const group = this.batchGroupOf((jobs[0] as CallbackJob).requestId);
    const keys: string[] = [];
    const args: (string | number)[] = [
      now,
      this.limits.historyLimit,
      this.limits.eventsMaxLen,
      this.limits.retentionSeconds,
      this.limits.gapTimeoutMs,
    ];
    for (const job of jobs) {
      const id = job.requestId;
      const p = this.keys.partition(id);
      if (this.batchGroup(p) !== group) throw new Error(`request ${id} is not of batch group ${group}`);
      keys.push(...this.keys.applyKeys(p, id));
      args.push(id, JSON.stringify(job));
    }
    const reply = await callScriptFlat(this.redis, "applyBatch", keys, args);
    const out: ApplyResult[] = [];
    for (let i = 0; i < jobs.length; i++) {
      out.push({
        result: reply[4 * i] as ApplyResult["result"],
        missing: Number(reply[4 * i + 1]),
        n: Number(reply[4 * i + 2]),
        ...(reply[4 * i + 3] === 1 ? { held: true } : {}),
      });
    }
    return out;
  }

  /**
   * The open gap of a request as it is now: its first seq and the job keys of its seqs (up to the
   * first buffered one), which the apply script checks (a job still there is being retried). The
   * script refuses to decide when the gap moved between this read and the call.
   */
  private async readGap(p: number, requestId: string, req: string, buf: string) {
    const replies = (await this.redis
      .pipeline()
      .hget(req, "applied")
      .zrangebyscore(buf, "-inf", "+inf", "WITHSCORES", "LIMIT", 0, 1)
      .exec()) as [Error | null, unknown][] | null;
    for (const [err] of replies ?? []) if (err) throw err;
    const applied = replies?.[0]?.[1] as string | null | undefined;
    const head = replies?.[1]?.[1] as string[] | undefined;
    const from = Number(applied ?? 0) + 1;
    const first = Number(head?.[1] ?? from);
    const jobKeys: string[] = [];
    for (let seq = from; seq < first; seq++) jobKeys.push(this.keys.callbackJob(p, requestId, seq));
    return { from, jobKeys };
  }

  /** Reads a request's fields and history; null when unknown or expired. */
  async read(requestId: string): Promise<StoredRequest | null> {
    const p = this.keys.partition(requestId);
    const [flat, history] = (await this.redis.ess_read(
      this.keys.request(p, requestId),
      this.keys.history(p, requestId),
    )) as unknown as [string[], string[]];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
    if (!fields.state) return null;
    const head = fields[HISTORY_HEAD_FIELD];
    delete fields[HISTORY_HEAD_FIELD];
    return { fields, history: decodeHistory(history, head) };
  }

  /** The state field alone (tests, tools). */
  async state(requestId: string): Promise<RequestState | null> {
    const p = this.keys.partition(requestId);
    return (await this.redis.hget(this.keys.request(p, requestId), "state")) as RequestState | null;
  }
}
