import { createLogger, type Logger, perRequestLogger } from "@ess/config";
import { describe, expect, it, vi } from "vitest";
import type { OperationsDeps } from "../context.js";
import { type AnsweredRequest, recordRequest } from "./observe.js";

/** A logger whose lines are recorded, as main.ts builds the access log (perRequestLogger). */
function recorded(): { writes: string[]; log: Logger } {
  const writes: string[] = [];
  const log = createLogger({ LOG_LEVEL: "info" }, "gateway", { write: (s: string) => writes.push(s) });
  return { writes, log: perRequestLogger(log) };
}

const ops = (accessLog: Logger) => ({ accessLog, retryAfterSeconds: 1 }) as unknown as OperationsDeps;

const CASES: AnsweredRequest[] = [
  {
    requestId: "3f2b6c1e-0d7a-4f55-9d0e-6b1f0c2a9e11",
    method: "POST",
    path: "/ess/rest/scheduler/v1/requests/42/executionStatus",
    status: 200,
    operation: "executionStatus",
    principal: "ess-client",
    callbackStatus: "UPDATE",
    start: 0,
  },
  // no principal: the field is left out, as pino leaves out an undefined value
  {
    requestId: 'caller\'s "id"\\x',
    method: "GET",
    path: '/ess/rest/scheduler/v1/requests/"quoted"/ü',
    status: 404,
    operation: "unknown",
    principal: undefined,
    callbackStatus: undefined,
    start: 0,
  },
  {
    requestId: "r",
    method: "M-SEARCH",
    path: "/",
    status: 503,
    operation: "health\n",
    principal: "name with \u2028 separator",
    callbackStatus: undefined,
    start: 0,
  },
];

describe("the access-log line", () => {
  it("is the line pino writes for the same fields, byte for byte but for the time", () => {
    for (const r of CASES) {
      const { writes, log } = recorded();
      const info = vi.spyOn(log, "info");
      recordRequest(ops(log), "gateway", r);
      // written without pino's per-field serialisation
      expect(info).not.toHaveBeenCalled();
      info.mockRestore();
      expect(writes).toHaveLength(1);
      const written = JSON.parse(writes[0] as string) as { durationMs: number };
      log.info(
        {
          requestId: r.requestId,
          listener: "gateway",
          method: r.method,
          path: r.path,
          status: r.status,
          durationMs: written.durationMs,
          operation: r.operation,
          principal: r.principal,
        },
        "request",
      );
      const [line, pinos] = writes.map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
      expect(line).toBe(pinos);
    }
  });

  it("is written by pino itself for a logger the line writer cannot imitate (a message prefix)", () => {
    const writes: string[] = [];
    const log = createLogger({ LOG_LEVEL: "info" }, "gateway", { write: (s: string) => writes.push(s) }).child(
      {},
      { redact: [], msgPrefix: "access: " },
    );
    recordRequest(ops(log), "admin", CASES[0] as AnsweredRequest);
    expect(JSON.parse(writes[0] as string)).toMatchObject({ msg: "access: request", listener: "admin" });
  });

  it("is not written below the info level", () => {
    const { writes, log } = recorded();
    log.level = "warn";
    recordRequest(ops(log), "gateway", CASES[0] as AnsweredRequest);
    expect(writes).toEqual([]);
  });
});
