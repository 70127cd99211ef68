import { describe, expect, it } from "vitest";
import { SCRIPTS, type ScriptName, scriptSource } from "./scripts.js";

/** The scripts that only read: declared no-writes (they run while a full Redis refuses writes). */
const READ_ONLY = new Set<ScriptName>(["read"]);
const READ_COMMANDS = new Set(["HGETALL", "HMGET", "HGET", "GET", "LRANGE", "ZRANGE", "ZCARD", "EXISTS"]);

describe("script flags", () => {
  it.each(Object.keys(SCRIPTS) as ScriptName[])(
    "%s is sent with its flags as its very first line, and no other shebang",
    (name) => {
      const source = scriptSource(name);
      // a writing script declares no flags (so Redis refuses it whole at maxmemory); none declares allow-oom
      const shebang = READ_ONLY.has(name) ? "#!lua flags=no-writes\n" : "#!lua\n";
      expect(source.startsWith(shebang)).toBe(true);
      expect(source.match(/^#!/gm)).toHaveLength(1);
      // the injections happened
      expect(source).not.toMatch(/^--@(TABLES|ADMIT|ADD_STANDARD_JOB)$/m);
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
