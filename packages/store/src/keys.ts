import { createRequire } from "node:module";
import { partitionOf } from "@ess/domain";
import { keySlot } from "./slot.js";

/**
 * BullMQ's own key builder, loaded alone (one small module without dependencies, not the whole of
 * bullmq): the one source of the names of a queue's keys for the project's scripts that read or
 * write BullMQ's keys without a Queue object.
 */
const { QueueKeys } = createRequire(import.meta.url)("bullmq/dist/cjs/classes/queue-keys.js") as {
  QueueKeys: new (prefix: string) => { getKeys(name: string): Record<string, string> };
};

/** The keys of BullMQ queue `name` under `prefix`, as BullMQ names them; `''` is the prefix of its job hashes. */
export function bullmqQueueKeys(prefix: string, name: string): Readonly<Record<string, string>> {
  return new QueueKeys(prefix).getKeys(name);
}

/** Hash slots of Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

/**
 * The hash tag of partition p of P: "p<p>" when its slot falls in the p-th of P equal slot ranges,
 * else "p<p>.<k>" with the smallest k that puts it there. Masters that own equal contiguous ranges
 * (as `redis-cli --cluster create` assigns them) then serve P/masters partitions each, give or take
 * one; plain "p<p>" tags land by chance (16 partitions on 3 masters: 4, 5 and 7).
 */
export function partitionTag(p: number, partitions: number): string {
  const lo = Math.floor((p * CLUSTER_SLOTS) / partitions);
  const hi = Math.floor(((p + 1) * CLUSTER_SLOTS) / partitions);
  const fits = (tag: string) => {
    const slot = keySlot(`{${tag}}`);
    return slot >= lo && slot < hi;
  };
  if (fits(`p${p}`)) return `p${p}`;
  for (let k = 0; ; k++) if (fits(`p${p}.${k}`)) return `p${p}.${k}`;
}

/** Name of the BullMQ queue inside each partition's prefix. */
export const CALLBACK_QUEUE = "callbacks";
/** Name of the BullMQ queue of cross-partition operations (bulk replays), prefix `<prefix>:{ops}`. */
export const OPS_QUEUE = "ops";

/**
 * Name of the per-partition BullMQ queue that mirrors the dead letters for the dashboard. No worker
 * consumes it: its jobs only show what is in the dead-letter store (which stays the source of truth).
 */
export const DEAD_LETTER_QUEUE = "dead-letters";

/** Name of the BullMQ queue of webhook deliveries inside each partition's prefix. */
export const WEBHOOK_QUEUE = "webhooks";

/**
 * The one key builder. Every key of a partition carries the partition's hash tag ({pN}), so a
 * script can touch a request, its partition's stream and queue atomically, also on Redis Cluster.
 */
export class Keys {
  private readonly tags: string[] = [];

  constructor(
    readonly prefix: string,
    readonly partitions: number,
  ) {}

  /** Partition of a request (hash of its canonical id). */
  partition(requestId: string): number {
    return partitionOf(requestId, this.partitions);
  }

  /** `<prefix>:{pN}` (the tag chosen by slot, see partitionTag): also the BullMQ prefix of partition N's queue. */
  tag(p: number): string {
    let tag = this.tags[p];
    if (tag === undefined) {
      tag = `${this.prefix}:{${partitionTag(p, this.partitions)}}`;
      this.tags[p] = tag;
    }
    return tag;
  }

  /** Redis Cluster's hash slot of partition p (every key of the partition is in it). */
  slot(p: number): number {
    return keySlot(this.tag(p));
  }

  request(p: number, id: string): string {
    return `${this.tag(p)}:req:${id}`;
  }
  buffer(p: number, id: string): string {
    return `${this.tag(p)}:req:${id}:buf`;
  }
  history(p: number, id: string): string {
    return `${this.tag(p)}:req:${id}:hist`;
  }
  skipped(p: number, id: string): string {
    return `${this.tag(p)}:req:${id}:skip`;
  }
  idempotency(p: number, id: string, key: string): string {
    return `${this.tag(p)}:req:${id}:idem:${key}`;
  }
  events(p: number): string {
    return `${this.tag(p)}:events`;
  }
  /** Dead letters of partition N: hash id → entry JSON. */
  deadLetters(p: number): string {
    return `${this.tag(p)}:dlq`;
  }
  /** Dead-letter index by time (score = ms when dead-lettered); `by` narrows it to one value of a field. */
  deadLetterIndex(p: number, by?: { field: "req" | "status" | "reason"; value: string }): string {
    return by ? `${this.tag(p)}:dlq:${by.field}:${by.value}` : `${this.tag(p)}:dlq:idx`;
  }
  /** `<prefix>:{ops}`: the tag of cross-partition operations (bulk replays, maintenance locks). */
  opsTag(): string {
    return `${this.prefix}:{ops}`;
  }
  /** A bulk replay operation's progress hash. */
  replayOp(opId: string): string {
    return `${this.opsTag()}:replay:${opId}`;
  }
  /** A bulk dead-letter action of the operator console: a hash (kind, filter, estimate, state, progress). */
  bulkAction(id: string): string {
    return `${this.opsTag()}:bulk:${id}`;
  }
  /** The dead-letter ids a bulk action covers, snapshotted when it is confirmed (a list). */
  bulkActionIds(id: string): string {
    return `${this.opsTag()}:bulk:${id}:ids`;
  }
  /** A confirmation's id snapshot while it is written (renamed to bulkActionIds when the confirmation wins). */
  bulkActionStaged(id: string, nonce: string): string {
    return `${this.opsTag()}:bulk:${id}:staged:${nonce}`;
  }
  /** The bulk actions, scored by when they were created (ms): the console's list, capped. */
  bulkActions(): string {
    return `${this.opsTag()}:bulks`;
  }
  /** `<prefix>:{audit}`: the audit log's own hash tag (a slot apart from the partitions and ops). */
  auditTag(): string {
    return `${this.prefix}:{audit}`;
  }
  /** The operator audit log: a stream capped at its length (AUDIT_MAX_ENTRIES). */
  auditLog(): string {
    return `${this.auditTag()}:log`;
  }
  /** A key of partition N written before a WAIT by a gateway that wrote nothing itself (see ReplicaAck). */
  ackFence(p: number): string {
    return `${this.tag(p)}:ackfence`;
  }
  /** The key the gateway's readiness probe writes (a small value with a short expiry). */
  readinessProbe(): string {
    return `${this.prefix}:readyz`;
  }
  /** A short-lived lock so that one worker at a time runs a periodic task. */
  lock(name: string): string {
    return `${this.opsTag()}:lock:${name}`;
  }
  /** Prefix of every request hash of partition N (the sweep script appends the request id). */
  requestPrefix(p: number): string {
    return `${this.tag(p)}:req:`;
  }
  /** Sorted set of partition N's requests with a requestTimeout, scored by when to look at them (ms). */
  deadlines(p: number): string {
    return `${this.tag(p)}:deadlines`;
  }
  /**
   * Partition N's request index: one lexicographic sorted set (all scores 0) whose members are
   * `a␟<submissionTime>␟<id>`, `j␟<jobDefinitionId>␟<submissionTime>␟<id>` and
   * `s␟<state>␟<stateChangeTime>␟<id>` (times as 15-digit ms), kept by the scripts that change state.
   */
  requestIndex(p: number): string {
    return `${this.tag(p)}:ix`;
  }
  /** Partition N's terminal requests' index members, scored by when their request hash expires (ms). */
  requestIndexExpiry(p: number): string {
    return `${this.tag(p)}:ix:exp`;
  }
  /** Hash of the webhook URLs subscribed to a request's state changes → subscription id. */
  subscriptions(p: number, id: string): string {
    return `${this.tag(p)}:req:${id}:subs`;
  }
  /** Hash of one subscription: url, sealed secret(s), since, next (the seq it delivers next), gapAt. */
  subscription(p: number, id: string, subId: string): string {
    return `${this.tag(p)}:req:${id}:sub:${subId}`;
  }
  /** Sorted set of one subscription's undelivered events of the request: CloudEvent JSON scored by seq. */
  deliveryQueue(p: number, id: string, subId: string): string {
    return `${this.tag(p)}:req:${id}:sub:${subId}:q`;
  }
  /** Capped list of one subscription's delivery attempts, newest first (JSON). */
  deliveryLog(p: number, id: string, subId: string): string {
    return `${this.tag(p)}:req:${id}:sub:${subId}:log`;
  }
  /** Set of partition N's delivery queues that hold events (`<requestId> <subId>`): the dispatcher's sweep. */
  activeDeliveries(p: number): string {
    return `${this.tag(p)}:wh:active`;
  }
  /**
   * Partition N's in-flight markers: hash `<id>-<seq>` (the callback's job id) → the id of the batch
   * job carrying it. A callback inside a batch job has no job hash of its own; its marker stands for
   * one (the gap check never skips a marked seq) from its admit until its apply or its dead letter.
   * The marker is always in the callback's own partition, also when its batch job sits in another
   * partition's queue (on a single Redis a batch spans partitions, see RequestStore.batchGroup).
   */
  inflight(p: number): string {
    return `${this.tag(p)}:inflight`;
  }
  /** BullMQ's keys of queue `name` (default: the callback queue) of partition N (see bullmqQueueKeys). */
  queueKeys(p: number, name: string = CALLBACK_QUEUE): Readonly<Record<string, string>> {
    return bullmqQueueKeys(this.tag(p), name);
  }
  /** BullMQ's keys of the ops queue. */
  opsQueueKeys(): Readonly<Record<string, string>> {
    return bullmqQueueKeys(this.opsTag(), OPS_QUEUE);
  }
  /**
   * admit-2's KEYS for a callback: its request hash and its Idempotency-Key's record (the request hash
   * again when it has none). The admit-enqueue scripts pass them as admit-2 takes them.
   */
  admitKeys(p: number, id: string, idempotencyKey?: string): [string, string] {
    const req = this.request(p, id);
    return [req, idempotencyKey === undefined ? req : this.idempotency(p, id, idempotencyKey)];
  }
  /**
   * The keys a script that moves request `id`'s state takes first, in this order (cancel-7's KEYS):
   * request hash, reorder buffer, history, the partition's event stream, skipped seqs, the partition's
   * request index and its expiry set.
   */
  stateKeys(p: number, id: string): string[] {
    return [
      this.request(p, id),
      this.buffer(p, id),
      this.history(p, id),
      this.events(p),
      this.skipped(p, id),
      this.requestIndex(p),
      this.requestIndexExpiry(p),
    ];
  }
  /**
   * apply-8's KEYS[1..8] for a callback of request `id` (partition N): its stateKeys, then the
   * partition's in-flight markers. apply-batch takes them per callback in the same order.
   */
  applyKeys(p: number, id: string): string[] {
    return [...this.stateKeys(p, id), this.inflight(p)];
  }
  /** Prefix of BullMQ job hashes of partition N's callback queue (job key = this + job id). */
  jobPrefix(p: number): string {
    return `${this.tag(p)}:${CALLBACK_QUEUE}:`;
  }
  /** The BullMQ job hash of a callback (partition N's callback queue, job id callbackJobId). */
  callbackJob(p: number, requestId: string, seq: number): string {
    return `${this.jobPrefix(p)}${callbackJobId(requestId, seq)}`;
  }
}

/** BullMQ job id of a callback: deterministic, so adding the same callback twice adds one job. */
export function callbackJobId(requestId: string, seq: number): string {
  return `${requestId}-${seq}`;
}
