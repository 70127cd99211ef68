import "@ess/testing/provided";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { postJson, registerRequest } from "../support/http.js";

// One callback traced through a real gateway and a real worker, exported over OTLP/HTTP (JSON) to a
// receiver this test runs: the spans must form one trace, parent to child, from the caller's
// traceparent through the gateway's HTTP span and admit script to the worker's apply; a webhook
// delivery sends its traceparent to the subscriber; a dead-letter replay has its span.

interface OtlpSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}

const value = (v: OtlpValue): unknown =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
const attrs = (list: { key: string; value: OtlpValue }[] = []) =>
  Object.fromEntries(list.map((a) => [a.key, value(a.value)]));

/** A minimal OTLP/HTTP trace receiver (JSON encoding): collects every span posted to /v1/traces. */
async function startReceiver(): Promise<{ server: Server; url: string; spans: OtlpSpan[]; paths: Set<string> }> {
  const spans: OtlpSpan[] = [];
  const paths = new Set<string>();
  const server = createServer((req, res) => {
    paths.add(req.url ?? "");
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const doc = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: OtlpValue }[] };
            scopeSpans: {
              spans: (Omit<OtlpSpan, "service" | "attributes"> & {
                attributes: { key: string; value: OtlpValue }[];
              })[];
            }[];
          }[];
        };
        for (const rs of doc.resourceSpans) {
          const service = String(attrs(rs.resource.attributes)["service.name"]);
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) spans.push({ ...s, service, attributes: attrs(s.attributes) });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, paths };
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let subscriber: Server;
let subscriberUrl: string;
const deliveries: { headers: IncomingHttpHeaders; answered: number }[] = [];
/** the subscriber answers these statuses in order, then 200 */
const answers: number[] = [];
let gateway: RunningProcess;
let worker: RunningProcess;
let env: Record<string, string>;

beforeAll(async () => {
  receiver = await startReceiver();
  subscriber = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const answered = answers.shift() ?? 200;
      deliveries.push({ headers: req.headers, answered });
      res.statusCode = answered;
      res.end();
    });
  });
  await new Promise<void>((r) => subscriber.listen(0, "127.0.0.1", r));
  subscriberUrl = `http://127.0.0.1:${(subscriber.address() as AddressInfo).port}/hook`;
  env = {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "2",
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    // export within a fraction of a second, so the test need not wait
    OTEL_BSP_SCHEDULE_DELAY: "100",
    WEBHOOK_SECRET: "trace-test-secret-0123",
    WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
    WEBHOOK_ATTEMPTS: "1",
    WEBHOOK_BACKOFF_MS: "100",
    DLQ_SWEEP_INTERVAL_MS: "500",
  };
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
});

afterAll(async () => {
  const codes = await Promise.all([gateway?.stop(), worker?.stop()]);
  await new Promise((r) => subscriber?.close(r));
  await new Promise((r) => receiver?.server.close(r));
  expect(codes).toEqual([0, 0]);
  // traces only, up to the flush at shutdown: no OTLP metrics or logs unless OTEL_METRICS_EXPORTER /
  // OTEL_LOGS_EXPORTER ask for them
  expect([...(receiver?.paths ?? [])]).toEqual(["/v1/traces"]);
});

const byName = (name: string, traceId: string) =>
  receiver.spans.filter((s) => s.name === name && s.traceId === traceId);

describe("OpenTelemetry traces across real processes", () => {
  it("one callback is one trace: caller → gateway HTTP span → admit+enqueue → worker apply, and the webhook gets traceparent", async () => {
    const id = "7001";
    const { requestHandle } = await registerRequest(gateway.url, id);
    // events of the request go to the subscriber; its first delivery fails (WEBHOOK_ATTEMPTS=1:
    // dead-lettered at once), to be replayed below
    answers.push(500);
    const sub = await postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/${id}/subscribe`, {
      callbackUrl: subscriberUrl,
    });
    expect(sub.status).toBe(200);

    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const res = await postJson(
      `${gateway.url}/ess/rest/scheduler/v1/requests/${id}/executionStatus`,
      { requestHandle, status: "SUCCESS", statusMessage: "done" },
      { traceparent: `00-${traceId}-${callerSpan}-01` },
    );
    expect(res.status).toBe(200);

    const apply = await eventually(async () => byName("ess.apply", traceId)[0], 20000, "the worker's apply span");
    // each process exports on its own schedule: the gateway's spans may arrive after the worker's
    const server = await eventually(
      async () =>
        receiver.spans.find(
          (s) => s.traceId === traceId && s.service === "ess-gateway" && s.parentSpanId === callerSpan,
        ),
      20000,
      "the gateway's HTTP span, a child of the caller's",
    );
    expect(server?.kind).toBe(2); // SERVER
    const admit = await eventually(async () => byName("ess.admit_enqueue", traceId)[0], 20000, "the admit span");
    expect(admit?.service).toBe("ess-gateway");
    expect(admit?.parentSpanId).toBe(server?.spanId);
    expect(admit?.attributes).toMatchObject({
      "ess.request_id": id,
      "ess.callback.status": "SUCCESS",
      "ess.seq": 1,
      "ess.outcome": "admitted",
    });
    expect(admit?.attributes["ess.partition"]).toEqual(expect.any(Number));

    // the worker's apply: another process, a child of the admit span through the job's traceparent
    expect(apply.service).toBe("ess-worker");
    expect(apply.parentSpanId).toBe(admit?.spanId);
    expect(apply.attributes).toMatchObject({
      "ess.request_id": id,
      "ess.seq": 1,
      "ess.callback.status": "SUCCESS",
      "ess.outcome": "applied",
      "ess.partition": admit?.attributes["ess.partition"],
    });

    // the handle appears on no span of the trace
    for (const s of receiver.spans) {
      for (const v of Object.values(s.attributes)) expect(String(v)).not.toContain(requestHandle);
    }

    // the webhook delivery's span, and the traceparent the subscriber received from it
    const delivery = await eventually(async () => deliveries[0], 20000, "the webhook delivery");
    const tp = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(delivery.headers.traceparent));
    expect(tp, `traceparent sent to the subscriber: ${delivery.headers.traceparent}`).not.toBeNull();
    const deliverSpan = await eventually(
      async () => byName("ess.webhook.deliver", tp?.[1] ?? "")[0],
      20000,
      "the delivery span",
    );
    expect(deliverSpan.service).toBe("ess-worker");
    expect(deliverSpan.attributes).toMatchObject({ "ess.outcome": "error", "ess.webhook.event": expect.any(String) });
    const fetchSpan = receiver.spans.find((s) => s.traceId === tp?.[1] && s.spanId === tp?.[2]);
    expect(fetchSpan?.parentSpanId, "the outgoing request's span is a child of the delivery span").toBe(
      deliverSpan.spanId,
    );
  });

  it("a dead-letter replay has its span, and the replayed delivery sends a traceparent again", async () => {
    // the failed delivery of the first test, in the dead letters
    const entry = await eventually(
      async () => {
        const r = await fetch(`${gateway.adminUrl}/admin/dead-letters`);
        const page = (await r.json()) as { items: { id: string }[] };
        return page.items[0];
      },
      20000,
      "the dead-lettered delivery",
    );
    const before = deliveries.length;
    const res = await fetch(`${gateway.adminUrl}/admin/dead-letters/${entry.id}/replay`, { method: "POST" });
    expect(res.status).toBe(200);
    const replay = await eventually(
      async () => receiver.spans.find((s) => s.name === "ess.dead_letter.replay"),
      20000,
      "the replay span",
    );
    expect(replay.service).toBe("ess-gateway");
    expect(replay.attributes).toMatchObject({ "ess.dead_letter.id": entry.id, "ess.outcome": "replayed" });
    const server = receiver.spans.find((s) => s.spanId === replay.parentSpanId);
    expect(server?.kind, "inside the admin request's HTTP span").toBe(2);
    const again = await eventually(async () => deliveries[before], 20000, "the replayed delivery");
    expect(again.answered).toBe(200);
    expect(String(again.headers.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("a bulk replay runs in the worker under its own span, each entry's replay its child", async () => {
    // one more failed delivery: the end of another subscribed request
    answers.push(500);
    const { requestHandle } = await registerRequest(gateway.url, "7002");
    await postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/7002/subscribe`, { callbackUrl: subscriberUrl });
    const cb = await postJson(`${gateway.url}/ess/rest/scheduler/v1/requests/7002/executionStatus`, {
      requestHandle,
      status: "SUCCESS",
    });
    expect(cb.status).toBe(200);
    await eventually(
      async () => {
        const r = await fetch(`${gateway.adminUrl}/admin/dead-letters`);
        return ((await r.json()) as { items: unknown[] }).items.length > 0;
      },
      20000,
      "a dead letter",
    );
    const res = await postJson(`${gateway.adminUrl}/admin/dead-letters/replay`, { all: true });
    expect(res.status).toBe(202);
    const { id: opId } = (await res.json()) as { id: string };
    const bulk = await eventually(
      async () =>
        receiver.spans.find((s) => s.name === "ess.dead_letter.replay_bulk" && s.attributes["ess.replay.id"] === opId),
      20000,
      "the bulk replay span",
    );
    expect(bulk.service).toBe("ess-worker");
    expect(bulk.attributes).toMatchObject({ "ess.outcome": "done", "ess.replay.replayed": 1 });
    const children = receiver.spans.filter(
      (s) => s.name === "ess.dead_letter.replay" && s.parentSpanId === bulk.spanId,
    );
    expect(children.map((c) => c.attributes["ess.outcome"])).toEqual(["replayed"]);
  });

  it("with ENQUEUE_MODE=queue: the admit and the enqueue have their spans, and the apply is the enqueue's child", async () => {
    const queued = await startApp("gateway", { ...env, ENQUEUE_MODE: "queue" });
    try {
      const id = "7003";
      const { requestHandle } = await registerRequest(queued.url, id);
      const res = await postJson(`${queued.url}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
        requestHandle,
        status: "UPDATE",
      });
      expect(res.status).toBe(200);
      const apply = await eventually(
        async () => receiver.spans.find((s) => s.name === "ess.apply" && s.attributes["ess.request_id"] === id),
        20000,
        "the apply span",
      );
      // the gateway exports its spans in batches of its own: its enqueue span may arrive after the apply
      const enqueue = await eventually(
        async () => receiver.spans.find((s) => s.spanId === apply.parentSpanId),
        20000,
        "the apply's parent span",
      );
      expect(enqueue?.name).toBe("ess.enqueue");
      expect(enqueue?.attributes).toMatchObject({ "ess.request_id": id, "ess.seq": 1, "ess.outcome": "enqueued" });
      const admit = receiver.spans.find((s) => s.name === "ess.admit" && s.attributes["ess.request_id"] === id);
      expect(admit?.attributes).toMatchObject({ "ess.seq": 1, "ess.outcome": "admitted" });
      // siblings under the HTTP span
      expect(admit?.parentSpanId).toBe(enqueue?.parentSpanId);
      expect(receiver.spans.find((s) => s.spanId === admit?.parentSpanId)?.kind).toBe(2);
    } finally {
      expect(await queued.stop()).toBe(0);
    }
  });
});
