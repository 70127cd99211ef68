// Load generation for the bench: the callback mix, autocannon (used as a library) runs at full speed,
// and an open-loop paced driver for the fixed-rate phases.
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import autocannon, { type RequestSpec, type Result } from "autocannon";

/** A registered request the bench calls back for. */
export interface Target {
  id: string;
  handle: string;
}

/** One HTTP call of the mix, and the answer the bench expects for it. */
export interface Call {
  path: string;
  body: string;
  expect: number;
  /** default POST */
  method?: string;
  /** sent on top of (and over) the driver's headers */
  headers?: Record<string, string>;
}

const FINALS = ["SUCCESS", "SUCCESS", "SUCCESS", "WARNING", "ERROR", "CANCEL"] as const;

/** Path of the callback of a request id. */
export function callbackPath(id: string): string {
  return `/ess/rest/scheduler/v1/requests/${id}/executionStatus`;
}

/**
 * The realistic mix: `updates` UPDATE callbacks then one final status per target, interleaved round by
 * round over all targets (so two connections rarely hold callbacks of one request at once), with one
 * 4xx call every `badEvery` calls: wrong handle (403), unknown id (404), malformed JSON (400) in turn.
 */
export function buildMix(targets: Target[], updates: number, badEvery: number): Call[] {
  const calls: Call[] = [];
  let bad = 0;
  const pushBad = () => {
    const t = targets[bad % targets.length]!;
    switch (bad++ % 3) {
      case 0:
        calls.push({
          path: callbackPath(t.id),
          body: JSON.stringify({ requestHandle: "not-the-handle", status: "UPDATE" }),
          expect: 403,
        });
        break;
      case 1:
        calls.push({
          path: callbackPath(String(9_000_000_000_000_000_000n + BigInt(bad))),
          body: JSON.stringify({ requestHandle: t.handle, status: "UPDATE" }),
          expect: 404,
        });
        break;
      default:
        calls.push({ path: callbackPath(t.id), body: `{"requestHandle": "${t.handle}", "status": `, expect: 400 });
    }
  };
  for (let round = 0; round <= updates; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      const final = round === updates;
      const status = final ? FINALS[i % FINALS.length]! : "UPDATE";
      const body: Record<string, string> = { requestHandle: t.handle, status };
      if (status === "WARNING" || status === "ERROR") body.statusMessage = `job ${t.id} reported ${status}`;
      else if (!final) body.statusMessage = `step ${round + 1} of ${updates}`;
      calls.push({ path: callbackPath(t.id), body: JSON.stringify(body), expect: 200 });
      if (badEvery > 0 && calls.length % badEvery === 0) pushBad();
    }
  }
  return calls;
}

/** Registration calls (POST .../executions with the handle chosen by the bench). */
export function registrationCalls(targets: Target[]): Call[] {
  return targets.map((t) => ({
    path: `/gateway/v1/requests/${t.id}/executions`,
    body: JSON.stringify({ requestHandle: t.handle }),
    expect: 201,
  }));
}

/** Targets with ids from `base + 1`, handles derived from the id. */
export function makeTargets(base: number, n: number): Target[] {
  return Array.from({ length: n }, (_, i) => {
    const id = String(base + i + 1);
    return { id, handle: `bench-${id}-${(base + i) % 9973}` };
  });
}

export interface LoadOptions {
  connections: number;
  /** requests per second over all connections (paced run); omit for as fast as possible */
  rate?: number;
  /** run for this many seconds instead of until the calls are used up (the calls then cycle) */
  duration?: number;
  /** headers of every call (e.g. Authorization) */
  headers?: Record<string, string>;
}

/**
 * Sends `calls` in order over `connections` keep-alive connections (each connection takes the next
 * call when it sends), once each unless `duration` is given.
 */
export async function drive(url: string, calls: Call[], opts: LoadOptions): Promise<Result & { seconds: number }> {
  let next = 0;
  const spec: RequestSpec = {
    method: "POST",
    setupRequest: (req) => {
      const call = calls[next++ % calls.length]!;
      req.method = call.method ?? "POST";
      req.path = call.path;
      req.body = call.body;
      req.headers = { "content-type": "application/json", ...opts.headers, ...call.headers };
      return req;
    },
  };
  const connections = Math.min(opts.connections, calls.length);
  const options: Parameters<typeof autocannon>[0] = {
    url,
    connections,
    pipelining: 1,
    timeout: 10,
    requests: [spec],
  };
  if (opts.duration !== undefined) options.duration = opts.duration;
  else options.amount = calls.length;
  if (opts.rate !== undefined) options.overallRate = Math.max(1, Math.round(opts.rate));
  // autocannon notices that an `amount` run is complete only on its 1-second tick, so its duration
  // (and any wall clock around it) rounds a run up to whole seconds: time the first send to the last
  // answer instead
  const t0 = performance.now();
  let last = t0;
  const instance = autocannon(options);
  instance.on("response", () => {
    last = performance.now();
  });
  const result = await instance;
  return Object.assign(result, { seconds: (last - t0) / 1000 });
}

/** Counts of answers by status code. */
export function statusCounts(result: Result): Record<string, number> {
  return Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count]));
}

/** How many answers each status code should get for a list of calls. */
export function expectedCounts(calls: Call[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of calls) out[c.expect] = (out[c.expect] ?? 0) + 1;
  return out;
}

/** What a paced run measured. */
export interface PacedResult {
  seconds: number;
  sent: number;
  statusCounts: Record<string, number>;
  errors: number;
  /** latency from each call's scheduled start to its complete answer, ms, sorted */
  latencies: number[];
  /** the calls slower than SLOW_CALL_MS: scheduled start (ms after the first) and latency, in start order */
  slow: { at: number; ms: number }[];
}

/** A call slower than this is listed on its own (PacedResult.slow): the accept target is a p99 of 10 ms. */
export const SLOW_CALL_MS = 10;

/**
 * Open-loop pacing: call i starts at t0 + i / rate whatever happened to the earlier ones (autocannon's
 * own rate limit sends each connection's per-second quota as a burst at the top of every second, which
 * is not a steady 50 %). Latency counts from the scheduled start, so a stalled server is not hidden
 * (no coordinated omission). At most `connections` keep-alive sockets; calls beyond wait for one.
 */
export async function drivePaced(
  url: string,
  calls: Call[],
  rate: number,
  connections: number,
  headers: Record<string, string> = {},
): Promise<PacedResult> {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const slow: { at: number; ms: number }[] = [];
  const counts: Record<string, number> = {};
  let errors = 0;
  let done = 0;
  const t0 = performance.now();
  const started = await new Promise<number>((resolve) => {
    let next = 0;
    const send = (call: Call, scheduled: number) => {
      const body = Buffer.from(call.body);
      const req = request(
        {
          agent,
          hostname,
          port,
          method: call.method ?? "POST",
          path: call.path,
          headers: { "content-type": "application/json", ...headers, ...call.headers, "content-length": body.length },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const ms = performance.now() - scheduled;
            latencies.push(ms);
            if (ms > SLOW_CALL_MS) slow.push({ at: scheduled - t0, ms });
            const code = String(res.statusCode);
            counts[code] = (counts[code] ?? 0) + 1;
            if (++done === calls.length) resolve(next);
          });
        },
      );
      req.on("error", () => {
        errors++;
        if (++done === calls.length) resolve(next);
      });
      req.end(body);
    };
    const tick = () => {
      const now = performance.now();
      while (next < calls.length && t0 + (next * 1000) / rate <= now) {
        send(calls[next]!, t0 + (next * 1000) / rate);
        next++;
      }
      if (next < calls.length) setTimeout(tick, 1);
    };
    tick();
  });
  agent.destroy();
  latencies.sort((a, b) => a - b);
  slow.sort((a, b) => a.at - b.at);
  return { seconds: (performance.now() - t0) / 1000, sent: started, statusCounts: counts, errors, latencies, slow };
}

/**
 * One keep-alive connection of the raw paced driver: writes a prebuilt request, reads its answer
 * (status line, then Content-Length or chunked framing), one call in flight at a time.
 */
class RawConnection {
  private buf = "";
  private status = 0;
  /** index of the body's first byte in `buf` once the head is read; -1 before */
  private bodyAt = -1;
  private length = -1;
  private chunked = false;
  /** the answer said Connection: close; the socket is not reused */
  private closing = false;
  open = true;
  busy = false;
  readonly socket: Socket;

  constructor(
    port: number,
    host: string,
    private readonly done: (conn: RawConnection, status: number) => void,
    private readonly failed: (conn: RawConnection) => void,
  ) {
    this.socket = connect({ port, host, noDelay: true });
    this.socket.setEncoding("latin1");
    this.socket.on("data", (d: string) => this.onData(d));
    const close = () => {
      if (!this.open) return;
      this.open = false;
      if (this.busy) {
        this.busy = false;
        this.failed(this);
      }
    };
    this.socket.on("error", close);
    this.socket.on("close", close);
  }

  send(request: Buffer): void {
    this.busy = true;
    this.buf = "";
    this.bodyAt = -1;
    this.socket.write(request);
  }

  private onData(d: string): void {
    // bytes with no call in flight (none expected) are not an answer
    if (!this.busy) return;
    this.buf += d;
    if (this.bodyAt < 0) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buf.slice(0, end).toLowerCase();
      this.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
      this.length = cl ? Number(cl[1]) : -1;
      this.chunked = this.length < 0 && /\r\ntransfer-encoding:[^\r]*chunked/.test(head);
      this.closing = /\r\nconnection:\s*close/.test(head);
      this.bodyAt = end + 4;
    }
    if (this.chunked ? this.buf.endsWith("0\r\n\r\n") : this.buf.length - this.bodyAt >= this.length) {
      this.busy = false;
      if (this.closing) {
        this.open = false;
        this.socket.destroy();
      }
      this.done(this, this.status);
    }
  }
}

/**
 * The requests of a raw paced run, written out once: every call's bytes back to back in one buffer, so
 * that the driver's heap holds two objects for them, not one string per call for its collections to walk.
 */
export interface RawRequests {
  bytes: Buffer;
  /** end offset of call i's bytes (call i starts where call i - 1 ends) */
  ends: Uint32Array;
}

export function rawRequests(url: string, calls: Call[], headers: Record<string, string> = {}): RawRequests {
  const { host } = new URL(url);
  const parts = calls.map((call) => {
    const body = Buffer.from(call.body);
    const all: Record<string, string | number> = {
      host,
      "content-type": "application/json",
      ...headers,
      ...call.headers,
      "content-length": body.length,
    };
    let head = `${call.method ?? "POST"} ${call.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(all)) head += `${k}: ${v}\r\n`;
    return Buffer.concat([Buffer.from(`${head}\r\n`, "latin1"), body]);
  });
  const ends = new Uint32Array(parts.length);
  let end = 0;
  parts.forEach((b, i) => {
    end += b.length;
    ends[i] = end;
  });
  return { bytes: Buffer.concat(parts, end), ends };
}

/**
 * The paced driver on raw keep-alive sockets: the requests are written out before the clock starts
 * (rawRequests, or `prepared`), and an answer is read only as far as its framing, so the load generator
 * spends a fraction of what node's http client does per call (it shares the machine's cores with the
 * system it measures). Same open-loop pacing and latency as the http driver.
 */
export async function drivePacedRaw(
  url: string,
  calls: Call[],
  rate: number,
  connections: number,
  headers: Record<string, string> = {},
  prepared: RawRequests = rawRequests(url, calls, headers),
): Promise<PacedResult> {
  const { hostname, port } = new URL(url);
  const { bytes, ends } = prepared;
  const total = ends.length;
  const latencies: number[] = [];
  const slow: { at: number; ms: number }[] = [];
  const counts: Record<string, number> = {};
  const idle: RawConnection[] = [];
  const live = new Set<RawConnection>();
  /** calls due but waiting for a connection, FIFO */
  const queued: number[] = [];
  let queuedAt = 0;
  const scheduledOf = new Map<RawConnection, number>();
  let errors = 0;
  let done = 0;
  let next = 0;
  const t0 = performance.now();
  const at = (i: number) => t0 + (i * 1000) / rate;
  let resolve!: (sent: number) => void;
  const finished = new Promise<number>((r) => (resolve = r));
  const settle = (conn: RawConnection) => {
    scheduledOf.delete(conn);
    if (++done === total) return resolve(next);
    if (!conn.open) {
      // a closed connection's place goes to a new one if calls are waiting
      live.delete(conn);
      if (queuedAt < queued.length) dispatch(queued[queuedAt++]!);
    } else if (queuedAt < queued.length) start(conn, queued[queuedAt++]!);
    else idle.push(conn);
  };
  const onDone = (conn: RawConnection, status: number) => {
    const ms = performance.now() - scheduledOf.get(conn)!;
    latencies.push(ms);
    if (ms > SLOW_CALL_MS) slow.push({ at: scheduledOf.get(conn)! - t0, ms });
    counts[status] = (counts[status] ?? 0) + 1;
    settle(conn);
  };
  const onFailed = (conn: RawConnection) => {
    errors++;
    settle(conn);
  };
  const start = (conn: RawConnection, i: number) => {
    scheduledOf.set(conn, at(i));
    conn.send(bytes.subarray(i === 0 ? 0 : ends[i - 1], ends[i]));
  };
  const dispatch = (i: number) => {
    let conn = idle.pop();
    while (conn && !conn.open) {
      live.delete(conn);
      conn = idle.pop();
    }
    if (!conn && live.size < connections) {
      conn = new RawConnection(Number(port), hostname, onDone, onFailed);
      live.add(conn);
    }
    if (conn) start(conn, i);
    else queued.push(i);
  };
  const tick = () => {
    const now = performance.now();
    while (next < total && at(next) <= now) dispatch(next++);
    if (next < total) setTimeout(tick, 1);
  };
  tick();
  const started = await finished;
  for (const c of live) c.socket.destroy();
  latencies.sort((a, b) => a - b);
  slow.sort((a, b) => a.at - b.at);
  return { seconds: (performance.now() - t0) / 1000, sent: started, statusCounts: counts, errors, latencies, slow };
}
