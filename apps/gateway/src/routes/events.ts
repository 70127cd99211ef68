import { type API_ROUTES, cloudEventJson, eventSource } from "@ess/contract";
import { EssError } from "@ess/domain";
import { compareStreamIds, previousStreamId, SchedulerStore, type StreamEvent } from "@ess/store";
import { streamSSE } from "hono/streaming";
import type { RouteHandlers } from "./bind.js";

/** Default poll interval of an idle SSE connection (SSE_POLL_MS). */
export const DEFAULT_SSE_POLL_MS = 250;
/** Entries read per partition per poll. */
const BATCH = 500;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15000;

const EVENT_ID = /^(([0-9]{1,20})-([0-9]{1,20}))(?:\/([0-9]{1,4}))?$/;
/** Both parts of a Redis stream id are unsigned 64-bit integers. */
const U64_MAX = 2n ** 64n - 1n;

/** Orders events as the SSE stream emits them: by stream id, then partition. */
function byPosition(a: StreamEvent, b: StreamEvent): number {
  return compareStreamIds(a.id, b.id) || a.partition - b.partition;
}

/**
 * Per-partition read cursors (exclusive) for a stream that resumes after `lastEventId`. An id of
 * the form `<entryId>/<p>` says every partition up to p has been seen through entryId, the later
 * partitions only up to just before it (events are emitted in (entryId, partition) order).
 */
function cursorsFrom(lastEventId: string | undefined, partitions: number[], startMs: number): Map<number, string> {
  const cursors = new Map<number, string>();
  if (lastEventId === undefined) {
    // new subscribers get what happens from now on
    for (const p of partitions) cursors.set(p, `${Math.max(startMs - 1, 0)}-18446744073709551615`);
    return cursors;
  }
  const m = EVENT_ID.exec(lastEventId);
  if (!m?.[1] || !m[2] || !m[3]) {
    throw new EssError("INVALID_EVENT_ID", "Last-Event-ID must be an event id of this stream, like 1732841234567-0/3");
  }
  // Redis refuses a part past 2^64-1 (the read would fail after the stream has started)
  if (BigInt(m[2]) > U64_MAX || BigInt(m[3]) > U64_MAX) {
    throw new EssError("INVALID_EVENT_ID", "Last-Event-ID: each part of a stream id is at most 18446744073709551615");
  }
  const id = `${BigInt(m[2])}-${BigInt(m[3])}`;
  const seen = m[4] === undefined ? Number.POSITIVE_INFINITY : Number(m[4]);
  for (const p of partitions) cursors.set(p, p <= seen ? id : previousStreamId(id));
  return cursors;
}

/** GET /gateway/v1/events: state changes as Server-Sent Events, optionally for one request, resumable. */
export const eventHandlers: RouteHandlers<Pick<typeof API_ROUTES, "getEvents">> = {
  getEvents: async (c, { query }) => {
    const { store, scheduler } = c.get("deps");
    const requestId = query.requestId;
    const partitions =
      requestId === undefined
        ? Array.from({ length: store.keys.partitions }, (_, i) => i)
        : [store.keys.partition(requestId)];
    const single = partitions.length === 1;
    const lastEventId = c.req.header("last-event-id") ?? c.req.query("lastEventId");
    const cursors = cursorsFrom(lastEventId || undefined, partitions, Date.now());
    const pollMs = scheduler?.ssePollMs ?? DEFAULT_SSE_POLL_MS;
    const events = new SchedulerStore(store);
    const source = eventSource(store.keys.prefix);

    return streamSSE(
      c,
      async (stream) => {
        let idleSince = Date.now();
        await stream.writeSSE({ event: "ready", data: "{}", retry: 1000 });
        const shutdown = scheduler?.shutdown;
        while (!stream.aborted && !shutdown?.aborted) {
          const { serverTimeMs, events: read, full } = await events.readEvents(cursors, BATCH);
          read.sort(byPosition);
          // Emit only what no later read can precede: entries of past milliseconds (a later XADD
          // gets an id at or after the server time), and, when a partition returned a full batch,
          // nothing past its last entry (its next entries are still unread).
          let bound: StreamEvent | undefined;
          for (const p of full) {
            const last = read.filter((e) => e.partition === p).at(-1);
            if (last && (!bound || byPosition(last, bound) < 0)) bound = last;
          }
          let emitted = 0;
          for (const e of read) {
            if (Number(e.id.split("-")[0]) >= serverTimeMs) break;
            if (bound && byPosition(e, bound) > 0) break;
            cursors.set(e.partition, e.id);
            if (requestId !== undefined && e.fields.requestId !== requestId) continue;
            await stream.writeSSE({
              id: single ? e.id : `${e.id}/${e.partition}`,
              event: e.fields.event ?? "message",
              // the CloudEvent of the state change, as webhooks carry it
              data: cloudEventJson(source, e.partition, e.id, e.fields),
            });
            emitted++;
          }
          if (emitted > 0) idleSince = Date.now();
          else if (Date.now() - idleSince > KEEPALIVE_MS) {
            await stream.write(": keep-alive\n\n");
            idleSince = Date.now();
          }
          if (full.size === 0) await stream.sleep(pollMs);
        }
      },
      async (err, stream) => {
        c.get("deps").logError(err, { path: c.req.path });
        await stream.writeSSE({ event: "error", data: JSON.stringify({ detail: "the event stream failed" }) });
      },
    );
  },
};
