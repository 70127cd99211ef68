import { connect, type Socket } from "node:net";
import { eventually } from "@ess/testing";
import { newRequestId } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import type { GatewayDeps } from "./context.js";
import { callbackNodeRoute, type NodeRoute } from "./routes/callback-node.js";
import type { serveApp } from "./server.js";
import { serveOnLoopback, useGatewayTestContext } from "./test-context.js";

// Clients that go away mid-body, over a real socket: routine, logged at debug, never an unexpected error.

const ctx = await useGatewayTestContext();
const debug: Record<string, unknown>[] = [];
const errors: unknown[] = [];
let server: ReturnType<typeof serveApp> | undefined;
let port = 0;
let id = "";
let handle = "";

beforeAll(async () => {
  id = newRequestId();
  const res = await ctx.app.request(`/gateway/v1/requests/${id}/executions`, { method: "POST" });
  handle = ((await res.json()) as { requestHandle: string }).requestHandle;
});

/** Serves the gateway, with the callback route on node:http or with the Hono app alone. */
async function serve(withRoute: boolean): Promise<NodeRoute | undefined> {
  const auth = await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: true });
  const deps: GatewayDeps = {
    ...ctx.deps,
    ops: { auth, retryAfterSeconds: 1 },
    logError: (err) => errors.push(err),
    logDebug: (context) => debug.push(context),
  };
  const route = withRoute ? callbackNodeRoute(deps) : undefined;
  ({ server, port } = await serveOnLoopback(createApp(deps), (err) => errors.push(err), route));
  return route;
}

async function stop(): Promise<void> {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
}

/** Opens a socket, writes `parts` in order, then ends or destroys it; resolves with what came back. */
function raw(parts: string[], end: "destroy" | "half-close" | "wait"): Promise<string> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, "127.0.0.1");
    let got = "";
    socket.on("data", (d) => {
      got += d.toString();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(got));
    socket.on("connect", async () => {
      for (const p of parts) {
        socket.write(p);
        await new Promise((r) => setTimeout(r, 20));
      }
      if (end === "destroy") socket.destroy();
      else if (end === "half-close") socket.end();
      else setTimeout(() => socket.destroy(), 3000);
    });
  });
}

const head = (extra: string) =>
  `POST /ess/rest/scheduler/v1/requests/${id}/executionStatus HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;

describe.each([
  ["the Hono app", false],
  ["the callback route on node:http", true],
])("a client that breaks off its body (%s)", (_name, withRoute) => {
  let route: NodeRoute | undefined;
  beforeAll(async () => {
    route = await serve(withRoute);
  });
  afterAll(stop);

  it("closes the connection before the declared Content-Length: a debug line, no unexpected error", async () => {
    const before = debug.length;
    const body = JSON.stringify({ requestHandle: handle, status: "UPDATE" });
    const taken = route?.served;
    await raw([head(`Content-Length: ${body.length + 100}\r\n`), body], "destroy");
    await eventually(async () => debug.length > before, 10000, "the debug line");
    expect(debug.at(-1)).toMatchObject({ method: "POST" });
    expect(errors).toEqual([]);
    if (route) expect(route.served).toBe((taken ?? 0) + 1);
  });

  it("half-closes before the declared Content-Length: answered 400 if anyone listens, never 500", async () => {
    const before = debug.length;
    const answer = await raw([head("Content-Length: 400\r\n"), '{"requestHandle": "'], "half-close");
    await eventually(async () => debug.length > before, 10000, "the debug line");
    expect(answer).not.toMatch(/^HTTP\/1\.1 5/);
    expect(errors).toEqual([]);
  });

  it("sends broken chunked framing: a 400 from the parser, no unexpected error", async () => {
    const answer = await raw(
      [head("Transfer-Encoding: chunked\r\n"), '5\r\n{"req\r\n', "zz-not-a-size\r\nxxxx\r\n"],
      "wait",
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    // the handler may or may not have started reading; either way nothing is an unexpected error
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toEqual([]);
  });

  it("closes mid-chunk: a debug line, no unexpected error", async () => {
    const before = debug.length;
    await raw([head("Transfer-Encoding: chunked\r\n"), '40\r\n{"requestHandle": "abc'], "destroy");
    await eventually(async () => debug.length > before, 10000, "the debug line");
    expect(errors).toEqual([]);
  });

  it.each([
    ["a Host header no URL can be built from", "GET /healthz HTTP/1.1\r\nHost: x@evil\r\n\r\n"],
    ["a Host header with a path", "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n"],
    ["a backslash in the path", "GET /docs\\..\\x HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["an absolute-form target with a bad URL", "GET http://[x/healthz HTTP/1.1\r\nHost: x\r\n\r\n"],
  ])("answers %s with a 400 SimpleExceptionDetail", async (_what, request) => {
    const answer = await raw([request], "half-close");
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { errorCode: string; detail: string };
    expect(body.errorCode).toBe("ESS-40003");
    expect(body.detail).toMatch(/^the request cannot be processed: /);
    expect(errors).toEqual([]);
  });

  it("leaves the server serving complete callbacks", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: handle, status: "UPDATE" }),
    });
    expect(res.status).toBe(200);
    expect(errors).toEqual([]);
  });
});
