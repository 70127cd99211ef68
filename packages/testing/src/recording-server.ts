import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request a recording server received, and the status it answered. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  answered: number;
}

/** An HTTP server on 127.0.0.1 that records every request (a webhook subscriber, an OTLP receiver). */
export interface RecordingServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  received: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * Starts a recording server on a free port. `answer` picks each request's status (default 200) and
 * may await before answering.
 */
export async function startRecordingServer(
  answer: (req: Omit<RecordedRequest, "answered">) => number | Promise<number> = () => 200,
): Promise<RecordingServer> {
  const received: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", async () => {
      const seen = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body };
      const status = await answer(seen);
      received.push({ ...seen, answered: status });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
