import type { Server } from "node:http";

/**
 * How many of a listener's open connections could send a request now: the connections minus the
 * requests in progress (one at a time per HTTP/1.1 connection). The admit batcher asks it before
 * letting a batch wait for others: when every connection already waits for an answer (a client with a
 * few connections calling as fast as it is answered), nothing more can arrive, and waiting would only
 * slow that client down.
 */
export class IdleConnections {
  private open = 0;
  private busy = 0;

  /** Counts the server's connections and requests from now on (before its request listener runs). */
  attach(server: Server): this {
    server.on("connection", (socket) => {
      this.open++;
      socket.once("close", () => this.open--);
    });
    server.prependListener("request", (_req, res) => {
      this.busy++;
      // node emits a response's close once, after its answer is sent or when its connection goes away
      res.once("close", () => this.busy--);
    });
    return this;
  }

  /** connections with no request in progress (0 when pipelined requests outnumber them) */
  get idle(): number {
    return Math.max(0, this.open - this.busy);
  }
}
