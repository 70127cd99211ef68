import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EssClientError, EssJobClient } from "./index.js";

// a real local HTTP server scripted per test: [status, headers, body] answers in order
let server: Server;
let base: string;
let answers: [number, Record<string, string>, string][] = [];
const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      seen.push({ url: req.url ?? "", headers: req.headers, body });
      const [status, headers, text] = answers.shift() ?? [200, {}, ""];
      res.writeHead(status, headers);
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

const client = () => new EssJobClient({ baseUrl: base, requestId: "42", requestHandle: "h:1", backoffMs: 1 });
const problem = (status: number, errorCode: string) =>
  [status, { "content-type": "application/json" }, JSON.stringify({ status, errorCode, detail: "why" })] as [
    number,
    Record<string, string>,
    string,
  ];

describe("EssJobClient", () => {
  it("posts executionStatus and surfaces the cancel signal", async () => {
    seen.length = 0;
    answers = [[200, { "x-ess-cancel-requested": "true" }, ""]];
    expect(await client().reportStatus("SUCCESS", "done")).toEqual({ cancelRequested: true });
    expect(seen[0]?.url).toBe("/ess/rest/scheduler/v1/requests/42/executionStatus");
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ requestHandle: "h:1", status: "SUCCESS", statusMessage: "done" });
    answers = [[200, {}, ""]];
    expect(await client().heartbeat()).toEqual({ cancelRequested: false });
    expect(JSON.parse(seen[1]?.body ?? "")).toEqual({ requestHandle: "h:1", status: "UPDATE" });
  });

  it("retries 503 and 409 with one Idempotency-Key per call, a new one for the next call", async () => {
    seen.length = 0;
    answers = [problem(503, "ESS-50301"), problem(409, "ESS-40902"), [200, {}, ""]];
    await client().heartbeat();
    const keys = seen.map((s) => s.headers["idempotency-key"]);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    answers = [[200, {}, ""]];
    await client().heartbeat();
    expect(seen[3]?.headers["idempotency-key"]).not.toBe(keys[0]);
  });

  it("throws EssClientError at once for a refusal (403), with status and errorCode", async () => {
    seen.length = 0;
    answers = [problem(403, "ESS-40301")];
    const err = await client()
      .reportStatus("ERROR")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EssClientError);
    expect(err).toMatchObject({ status: 403, errorCode: "ESS-40301" });
    expect(seen).toHaveLength(1);
  });

  it("gives up after its attempts, with the last failure", async () => {
    seen.length = 0;
    answers = Array.from({ length: 5 }, () => problem(503, "ESS-50301"));
    await expect(client().heartbeat()).rejects.toMatchObject({ status: 503 });
    expect(seen).toHaveLength(5);
  });

  it("checkInCancelling sends the execution context and answers the boolean", async () => {
    seen.length = 0;
    answers = [[200, { "content-type": "application/json" }, "true"]];
    const c = client();
    expect(c.executionContext).toBe("ess1:42:h:1");
    expect(await c.checkInCancelling()).toBe(true);
    expect(seen[0]?.url).toBe("/ess/rest/scheduler/v1/requests/42/checkInCancelling");
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ requestExecutionContext: "ess1:42:h:1" });
    answers = [[200, { "content-type": "application/json" }, "false"]];
    expect(await c.checkInCancelling()).toBe(false);
  });
});
