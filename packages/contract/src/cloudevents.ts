import { z } from "zod";

/**
 * The one event shape of every outbound channel (webhooks, SSE, and consumers of the partition event
 * streams): a CloudEvents 1.0 event in structured JSON mode, built from the fields of a stream entry.
 * The Lua scripts write plain fields; this module alone turns them into the envelope.
 */

/** CloudEvents version of every event. */
export const CLOUDEVENTS_SPECVERSION = "1.0";
/** `datacontenttype` of every event. */
export const CLOUDEVENT_CONTENT_TYPE = "application/json";
/** Media type of a structured-mode CloudEvent (the body of a webhook POST). */
export const CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents+json";

/** `source` of the events of a deployment: its KEY_PREFIX as a URN (receivers can tell deployments apart). */
export function eventSource(keyPrefix: string): string {
  return `urn:ess:${encodeURIComponent(keyPrefix)}`;
}

/** `type` of an ESS event name: REQUEST_ERROR_MANUAL_RECOVERY → `ess.request.error_manual_recovery`. */
export function eventType(essEvent: string): string {
  return `ess.request.${essEvent.replace(/^REQUEST_/, "").toLowerCase()}`;
}

/** `id` of the event at stream entry `entryId` of partition p; the same string as its SSE id on the all-partitions stream. */
export function eventId(entryId: string, partition: number): string {
  return `${entryId}/${partition}`;
}

/** Parses an event id back into its stream entry id and partition; null when it is not one. */
export function parseEventId(id: string): { entryId: string; partition: number } | null {
  const m = /^([0-9]{1,20}-[0-9]{1,20})\/([0-9]{1,4})$/.exec(id);
  return m ? { entryId: m[1] as string, partition: Number(m[2]) } : null;
}

/**
 * Stream fields → `data`: the state change. `seq` is the request's event sequence number (1, 2, …
 * over all its state changes: the order a receiver applies them in, and with `requestId` what it
 * deduplicates on); `callbackSeq` the sequence number of the callback that caused it, when one did.
 */
function dataJson(fields: Record<string, string>): string {
  const out: Record<string, unknown> = {};
  if (fields.eventSeq !== undefined) out.seq = Number(fields.eventSeq);
  for (const [k, v] of Object.entries(fields)) {
    if (k === "requestId" || k === "eventSeq") continue;
    if (k === "seq") out.callbackSeq = Number(v);
    else if (k === "execution") out[k] = Number(v);
    else if (k === "at") out[k] = new Date(Number(v)).toISOString();
    else if (k === "isTimedOut") out[k] = v === "true";
    else out[k] = v;
  }
  const rid = fields.requestId ?? "0";
  // requestId written by hand: an exact JSON integer past 2^53
  const id = /^[0-9]+$/.test(rid) ? rid : JSON.stringify(rid);
  return `{"requestId":${id},${JSON.stringify(out).slice(1)}`;
}

/** The CloudEvent (structured JSON, one line) of stream entry `entryId` of partition p with these fields. */
export function cloudEventJson(
  source: string,
  partition: number,
  entryId: string,
  fields: Record<string, string>,
): string {
  const head = {
    specversion: CLOUDEVENTS_SPECVERSION,
    id: eventId(entryId, partition),
    source,
    type: eventType(fields.event ?? "REQUEST_UNKNOWN"),
    subject: fields.requestId ?? "",
    time: new Date(Number(fields.at ?? entryId.split("-")[0])).toISOString(),
    datacontenttype: CLOUDEVENT_CONTENT_TYPE,
  };
  return `${JSON.stringify(head).slice(0, -1)},"data":${dataJson(fields)}}`;
}

/** `data` of an event: the state change of one request. */
export const eventDataSchema = z.object({
  // a JSON integer (past 2^53 it parses inexactly as a number: read it from `subject` then)
  requestId: z.union([z.number().min(1), z.string()]),
  seq: z.number().int().min(1),
  event: z.string().regex(/^REQUEST_[A-Z_]+$/),
  state: z.string(),
  previousState: z.string().optional(),
  execution: z.number().int().min(0),
  at: z.iso.datetime(),
  callbackSeq: z.number().int().min(1).optional(),
  cause: z.string().optional(),
  errorType: z.string().optional(),
  isTimedOut: z.boolean().optional(),
});

/** A CloudEvents 1.0 event as this project sends it (the spec's required attributes, and the optional ones it uses). */
export const cloudEventSchema = z.strictObject({
  specversion: z.literal(CLOUDEVENTS_SPECVERSION),
  id: z.string().min(1),
  source: z.string().min(1),
  type: z.string().min(1),
  subject: z.string().regex(/^[0-9]+$/),
  time: z.iso.datetime(),
  datacontenttype: z.literal(CLOUDEVENT_CONTENT_TYPE),
  data: eventDataSchema,
});
export type CloudEvent = z.output<typeof cloudEventSchema>;
