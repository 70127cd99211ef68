/**
 * A webhook receiver run as its own process by the e2e suites (`node --import tsx
 * test/support/webhook-receiver.ts`): it answers deliveries as scripted by its environment and checks
 * their signatures with the `standardwebhooks` reference library, as a subscriber's endpoint would.
 *
 *   RECEIVER_FAIL_FIRST=N  the first N deliveries to each path answer 500, the later ones 204
 *   RECEIVER_HOLD=1        every delivery waits for POST /_release before it is answered
 *
 * Control endpoints (the test's side): POST /_secrets {"path","secrets":[…]} the secrets a path's
 * deliveries are checked against; GET /_received every delivery so far; GET /_held how many wait;
 * POST /_release answers the held ones and stops holding. Prints {"port":N} once listening.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  answered: number | null;
  /** per known secret of the path, in order: did the delivery verify with it */
  verifiedWith: boolean[];
}

const failFirst = Number(process.env.RECEIVER_FAIL_FIRST ?? 0);
let holding = process.env.RECEIVER_HOLD === "1";
const received: Delivery[] = [];
const seenPerPath = new Map<string, number>();
const secrets = new Map<string, string[]>();
const held: (() => void)[] = [];

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (d: Buffer) => {
    body += d.toString();
  });
  req.on("end", () => {
    const path = req.url ?? "";
    if (path === "/_received") return json(res, 200, received);
    if (path === "/_held") return json(res, 200, { held: held.length });
    if (path === "/_secrets") {
      const { path: p, secrets: s } = JSON.parse(body) as { path: string; secrets: string[] };
      secrets.set(p, s);
      return json(res, 200, { ok: true });
    }
    if (path === "/_release") {
      holding = false;
      for (const answer of held.splice(0)) answer();
      return json(res, 200, { ok: true });
    }
    const n = (seenPerPath.get(path) ?? 0) + 1;
    seenPerPath.set(path, n);
    const verifiedWith = (secrets.get(path) ?? []).map((s) => {
      try {
        new Webhook(s).verify(body, req.headers as Record<string, string>);
        return true;
      } catch {
        return false;
      }
    });
    const delivery: Delivery = { path, headers: req.headers, body, answered: null, verifiedWith };
    received.push(delivery);
    const answer = () => {
      delivery.answered = n <= failFirst ? 500 : 204;
      res.statusCode = delivery.answered;
      res.end();
    };
    if (holding) held.push(answer);
    else answer();
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
