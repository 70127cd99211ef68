import { createServer, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { IdleConnections } from "./idle-connections.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A server that holds every request until told to answer it, with its connections counted. */
async function holdingServer() {
  const held: ServerResponse[] = [];
  const server = createServer((_req, res) => {
    held.push(res);
  });
  const connections = new IdleConnections().attach(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return { server, connections, held, port };
}

async function open(port: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  cleanups.push(() => socket.destroy());
  return socket;
}

const GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setImmediate(r));
}

describe("IdleConnections", () => {
  it("counts the connections that have no request in progress", async () => {
    const { connections, held, port } = await holdingServer();
    expect(connections.idle).toBe(0);
    const [a, b] = [await open(port), await open(port)];
    await until(() => connections.idle === 2);
    a.write(GET);
    await until(() => held.length === 1);
    expect(connections.idle).toBe(1);
    b.write(GET);
    await until(() => held.length === 2);
    expect(connections.idle).toBe(0);
    // an answer frees its keep-alive connection
    held[0]?.end("ok");
    await until(() => connections.idle === 1);
    // a client that goes away while its request is held frees nothing twice
    b.destroy();
    await until(() => connections.idle === 1 && held[1]?.closed === true);
    await new Promise((r) => setTimeout(r, 20));
    expect(connections.idle).toBe(1);
  });
});
