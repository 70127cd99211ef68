import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Call, drivePacedRaw } from "./load.js";

// The raw paced driver reads answers only as far as their framing; the bench's holds/fails verdicts rest
// on its status counts, so each framing node's server can send is checked here: a known length, a
// chunked body sent in pieces, an empty body, Connection: close, and a socket the server destroys.
let server: Server;
let url: string;
const seen: { method: string; url: string; body: string; auth: string | undefined; extra: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        body,
        auth: req.headers.authorization,
        extra: req.headers["x-extra"] as string | undefined,
      });
      const kind = req.url!.split("/")[1];
      if (kind === "length") res.writeHead(200, { "content-type": "application/json" }).end('{"ok":"é"}');
      else if (kind === "chunked") {
        res.writeHead(403, { "content-type": "application/json" });
        res.write('{"part":1');
        setTimeout(() => res.end(',"part2":"\\r\\n0\\r\\n"}'), 5);
      } else if (kind === "empty") res.writeHead(204).end();
      else if (kind === "close") res.writeHead(404, { connection: "close", "content-length": "2" }).end("no");
      else req.socket.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("drivePacedRaw", () => {
  it("counts every framing's status, keeps bodies and headers byte for byte, and counts a dropped socket as an error", async () => {
    seen.length = 0;
    const kinds = ["length", "chunked", "empty", "close", "length", "drop"];
    const calls: Call[] = Array.from({ length: 60 }, (_, i) => ({
      path: `/${kinds[i % kinds.length]}/${i}`,
      body: JSON.stringify({ i, text: "ünïcode ✓" }),
      expect: 200,
      ...(i % 2 === 0 ? { headers: { "x-extra": `v${i}` } } : {}),
      ...(i === 1 ? { method: "PUT" } : {}),
    }));
    const res = await drivePacedRaw(url, calls, 2000, 4, { authorization: "Bearer t" });
    expect(res.sent).toBe(60);
    expect(res.statusCounts).toEqual({ "200": 20, "403": 10, "204": 10, "404": 10 });
    expect(res.errors).toBe(10);
    expect(res.latencies).toHaveLength(50);
    expect(seen).toHaveLength(60);
    const byUrl = new Map(seen.map((s) => [s.url, s]));
    calls.forEach((c, i) => {
      const s = byUrl.get(c.path)!;
      expect(s.body).toBe(c.body);
      expect(s.method).toBe(i === 1 ? "PUT" : "POST");
      expect(s.auth).toBe("Bearer t");
      expect(s.extra).toBe(i % 2 === 0 ? `v${i}` : undefined);
    });
  });
});
