import { describe, expect, it } from "vitest";
import { REPLY } from "./codes.js";
import { expandIncludes, includeNames, SCRIPTS, type ScriptName, scriptSource } from "./scripts.js";

/** The scripts that only read: declared no-writes (they run while a full Redis refuses writes). */
const READ_ONLY = new Set<ScriptName>(["read", "queueCounts"]);
const READ_COMMANDS = new Set([
  "HGETALL",
  "HMGET",
  "HGET",
  "GET",
  "LRANGE",
  "LINDEX",
  "LLEN",
  "ZRANGE",
  "ZCARD",
  "EXISTS",
]);

describe("script flags", () => {
  it.each(Object.keys(SCRIPTS) as ScriptName[])(
    "%s is sent with its flags as its very first line, and no other shebang",
    (name) => {
      const source = scriptSource(name);
      // a writing script declares no flags (so Redis refuses it whole at maxmemory); none declares allow-oom
      const shebang = READ_ONLY.has(name) ? "#!lua flags=no-writes\n" : "#!lua\n";
      expect(source.startsWith(shebang)).toBe(true);
      expect(source.match(/^#!/gm)).toHaveLength(1);
      // every include was resolved
      expect(source).not.toMatch(/^--@include /m);
    },
  );

  it.each([...READ_ONLY])("%s only reads", (name) => {
    const commands = [...scriptSource(name).matchAll(/(?:redis\.call|rcall)\(\s*['"]([A-Za-z]+)['"]/g)].map((m) =>
      m[1]?.toUpperCase(),
    );
    expect(commands.length).toBeGreaterThan(0);
    for (const c of commands) expect(READ_COMMANDS.has(c as string), c).toBe(true);
  });
});

describe("includes", () => {
  it.each(Object.keys(SCRIPTS) as ScriptName[])("%s defines each shared fragment at most once", (name) => {
    const source = scriptSource(name);
    for (const fn of ["appendHistory", "publishEvent", "expireRequest", "callbackJobId"]) {
      expect(source.split(`local function ${fn}(`).length - 1, fn).toBeLessThanOrEqual(1);
    }
  });

  it("an include is resolved once per script, and an unknown one fails loudly", () => {
    const twice = expandIncludes("--@include history\n--@include history\n");
    expect(twice.split("local function appendHistory(").length - 1).toBe(1);
    expect(() => expandIncludes("--@include no-such-thing\n")).toThrow(/unknown Lua include 'no-such-thing'/);
  });

  it("the reply codes reach the scripts as the one enum", () => {
    expect(scriptSource("cancel")).toContain(`["TOO_EARLY"]=${REPLY.TOO_EARLY}`);
    expect(includeNames()).toEqual(expect.arrayContaining(["codes", "history", "event", "expireTerminal", "jobId"]));
  });
});
