import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { createLogger, isoTime, jsonString, lineWriter, perRequestLogger, TurnBufferedDestination } from "./logger.js";

/** A destination over a recording sink: every write the process would make to stdout. */
function recorded() {
  const writes: string[] = [];
  const dest = new TurnBufferedDestination({ write: (s: string) => writes.push(s) });
  return { writes, log: createLogger({ LOG_LEVEL: "info" }, "test", dest) };
}
const nextTurn = () => new Promise((r) => setImmediate(r));
const lines = (writes: string[]) =>
  writes
    .join("")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; level: number });

describe("log lines written once per event-loop turn", () => {
  it("writes the lines of one turn with one write, in order, after the turn", async () => {
    const { writes, log } = recorded();
    for (let i = 0; i < 50; i++) log.info({ i }, `line ${i}`);
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toHaveLength(1);
    expect(lines(writes).map((l) => l.msg)).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i}`));
    log.info({}, "next turn");
    await nextTurn();
    expect(writes).toHaveLength(2);
  });

  it("writes a warning at once, after the lines buffered before it", () => {
    const { writes, log } = recorded();
    log.info({}, "first");
    log.warn({}, "careful");
    expect(lines(writes).map((l) => l.msg)).toEqual(["first", "careful"]);
    log.error({ err: "x" }, "broken");
    expect(lines(writes).map((l) => l.msg)).toEqual(["first", "careful", "broken"]);
  });

  it("keeps the redaction of handles and credentials", async () => {
    const { writes, log } = recorded();
    log.info({ requestHandle: "h-secret", nested: { password: "p" } }, "call");
    await nextTurn();
    expect(writes.join("")).not.toMatch(/h-secret|"p"/);
    expect(writes.join("")).toContain("[redacted]");
  });

  it("writes what is buffered when the process exits", () => {
    // a process that logs and exits in the same turn: process.exit() still gets every line out
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const code = `import { createLogger } from "@ess/config";
const log = createLogger({ LOG_LEVEL: "info" }, "exit-test");
for (let i = 0; i < 1000; i++) log.info({ i }, "before exit");
process.exit(3);`;
    const out = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: root,
      encoding: "utf8",
    });
    expect(out.status).toBe(3);
    expect(out.stdout.split("\n").filter((l) => l.includes("before exit"))).toHaveLength(1000);
  });
});

describe("the time field", () => {
  it("is pino's ISO time, also for lines in the same millisecond and after the clock moves", () => {
    vi.useFakeTimers();
    try {
      for (const t of [
        Date.UTC(2026, 0, 2, 3, 4, 5, 678),
        Date.UTC(2026, 0, 2, 3, 4, 5, 678),
        Date.UTC(2026, 0, 2, 3, 4, 5, 679),
        0,
      ]) {
        vi.setSystemTime(t);
        expect(isoTime()).toBe(pino.stdTimeFunctions.isoTime());
      }
      expect(isoTime()).toBe(',"time":"1970-01-01T00:00:00.000Z"');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("lineWriter", () => {
  it("writes the line pino writes for the same fields and message, byte for byte", async () => {
    const { writes, log } = recorded();
    const job = perRequestLogger(log);
    const write = lineWriter(job, "info", "job processed");
    expect(write).toBeDefined();
    const cases = [
      { requestId: "123", seq: 4, mode: "cb", status: "UPDATE", result: "applied", drained: 0 },
      { requestId: "9223372036854775807", seq: 1, mode: "gap", result: "skipped", drained: 2 },
      { requestId: 'a "quoted"\nid', seq: 1, mode: "cb", result: "applied", drained: 0 },
    ];
    for (const c of cases) {
      job.info(c, "job processed");
      write?.(
        Object.entries(c)
          .map(([k, v]) => `,"${k}":${typeof v === "string" ? jsonString(v) : v}`)
          .join(""),
      );
    }
    await nextTurn();
    // the time field is the one thing two lines written a moment apart may not share
    const out = writes
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
    expect(out).toHaveLength(6);
    for (let i = 0; i < out.length; i += 2) expect(out[i + 1]).toBe(out[i]);
  });

  it("writes nothing below the logger's level", async () => {
    const writes: string[] = [];
    const log = createLogger(
      { LOG_LEVEL: "warn" },
      "test",
      new TurnBufferedDestination({ write: (s: string) => writes.push(s) }),
    );
    lineWriter(log, "info", "job processed")?.(',"seq":1');
    log.level = "info";
    lineWriter(log, "info", "job processed")?.(',"seq":2');
    await nextTurn();
    expect(lines(writes).map((l) => (l as unknown as { seq: number }).seq)).toEqual([2]);
  });

  it("is undefined for a logger whose lines it cannot imitate", () => {
    const sink = { write: () => {} };
    expect(lineWriter(pino({ mixin: () => ({ a: 1 }) }, sink), "info", "m")).toBeUndefined();
    expect(lineWriter(pino({ formatters: { log: (o) => o } }, sink), "info", "m")).toBeUndefined();
    expect(lineWriter(pino({ nestedKey: "payload" }, sink), "info", "m")).toBeUndefined();
    expect(lineWriter(pino({ msgPrefix: "[x] " }, sink), "info", "m")).toBeUndefined();
  });
});
