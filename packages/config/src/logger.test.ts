import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { createLogger, isoTime, TurnBufferedDestination } from "./logger.js";

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
