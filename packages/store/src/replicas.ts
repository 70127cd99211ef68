import { EssError } from "@ess/domain";
import type { Redis } from "ioredis";
import type { Keys } from "./keys.js";
import { nodeFor } from "./redis.js";
import type { AdmitResult } from "./store.js";

/**
 * Acknowledged means replicated: WAIT numreplicas timeout on the node connection that ran the write.
 * WAIT covers every write the connection sent before it, so concurrent callbacks of one node share
 * one WAIT ("group commit"): at most one in flight per node and one queued behind it, which covers
 * everyone who arrived while the first was out. WAIT blocks its connection while it waits: with
 * replicas behind, every callback of that node waits with it, which is the point.
 *
 * What it does not give: Redis 7.0 has no WAITAOF, so "replicated" means in the replicas' memory, not
 * on their disks; and a replica promoted by a failover has no replica of its own until the old master
 * rejoins as one, so until then every callback of its slots is answered 503 (a shortfall), never 200.
 */
export class ReplicaAck {
  private readonly nodes = new Map<
    Redis,
    { inflight?: Promise<number> | undefined; next?: Promise<number> | undefined }
  >();

  constructor(
    private readonly redis: Redis,
    readonly replicas: number,
    readonly timeoutMs: number,
  ) {}

  /**
   * Resolves once `replicas` replicas have every write this process sent to the node serving `key`
   * so far; throws REPLICAS_UNACKNOWLEDGED (503) on a shortfall. `fence`: a key of the same slot
   * written first, for a caller that wrote nothing itself (a repeat answered from a record another
   * connection wrote): replication is a stream, so a replica past the fence has that record too.
   */
  async acknowledge(key: string, fence?: string): Promise<void> {
    const node = nodeFor(this.redis, key);
    if (fence !== undefined) await node.set(fence, "1", "PX", 60000);
    const acked = await this.wait(node);
    if (acked < this.replicas) {
      throw new EssError(
        "REPLICAS_UNACKNOWLEDGED",
        `the callback is stored on the master but only ${acked} of the ${this.replicas} replicas required ` +
          `(ACK_REPLICAS) acknowledged it within ${this.timeoutMs} ms; retry with the same Idempotency-Key`,
        { retryAfter: 1 },
      );
    }
  }

  /**
   * ACK_REPLICAS for the admits of one script call (one batch group: one node), answered by `requestId`'s node.
   * A repeat or a resumed call may be answered from what another connection wrote: a fence write of
   * this connection's own first makes the WAIT cover that too.
   */
  async acknowledgeAdmits(keys: Keys, requestId: string, results: readonly AdmitResult[]): Promise<void> {
    const p = keys.partition(requestId);
    const wroteNothing = results.some((r) => r.kind === "repeat" || r.resumed);
    await this.acknowledge(keys.request(p, requestId), wroteNothing ? keys.ackFence(p) : undefined);
  }

  private wait(node: Redis): Promise<number> {
    let s = this.nodes.get(node);
    if (!s) {
      s = {};
      this.nodes.set(node, s);
    }
    const state = s;
    if (!state.inflight) {
      state.inflight = (node.wait(this.replicas, this.timeoutMs) as Promise<number>).finally(() => {
        state.inflight = undefined;
      });
      return state.inflight;
    }
    // one WAIT is out; it was sent before this caller's write was answered, so it may not cover it
    if (!state.next) {
      state.next = state.inflight
        .catch(() => 0)
        .then(() => {
          state.next = undefined;
          return this.wait(node);
        });
    }
    return state.next;
  }
}
