import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { requireRedisServer } from "./redis-binary.js";
import { findRedisServer } from "./redis-server.js";

// The fault suites call requireRedisServer at load time: without redis-server they must fail in CI
// and only skip (with a warning) on a developer's machine.
describe("requireRedisServer", () => {
  const path = process.env.PATH;
  afterEach(() => {
    process.env.PATH = path;
    vi.restoreAllMocks();
  });

  it("fails in CI when redis-server is missing, naming what to install", () => {
    process.env.PATH = "/nonexistent";
    expect(() => requireRedisServer("crash suite", { CI: "true" })).toThrow(/crash suite: redis-server.*CI must run/);
  });

  it("warns and skips outside CI when redis-server is missing", () => {
    process.env.PATH = "/nonexistent";
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    expect(requireRedisServer("crash suite", {})).toBeNull();
    expect(requireRedisServer("crash suite", { CI: "false" })).toBeNull();
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/crash suite: redis-server is not on PATH.*skipped/));
  });

  it.skipIf(!findRedisServer())("returns the binary when it is there, CI or not", () => {
    expect(requireRedisServer("crash suite", { CI: "true" })).toMatch(/redis-server$/);
  });
});

describe("every suite that starts its own redis-server", () => {
  it("finds the binary through requireRedisServer (fails in CI, warns locally, never skips silently)", () => {
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.test.ts"], {
      cwd: root,
      encoding: "utf8",
    }).split("\n");
    const starting = files.filter(
      (f) =>
        f &&
        !f.startsWith("packages/testing/") &&
        existsSync(`${root}/${f}`) &&
        readFileSync(`${root}/${f}`, "utf8").includes("new RedisServer("),
    );
    expect(starting.length).toBeGreaterThan(0);
    for (const f of starting) expect(readFileSync(`${root}/${f}`, "utf8"), f).toContain("requireRedisServer(");
  });
});
