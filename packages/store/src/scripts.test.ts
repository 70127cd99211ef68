import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SCRIPTS, type ScriptName, scriptSource } from "./scripts.js";

const LUA_DIR = new URL("./lua/", import.meta.url);

describe("script flags", () => {
  it("every script file starts with a #!lua shebang and declares neither no-writes nor allow-oom", () => {
    const files = readdirSync(LUA_DIR).filter((f) => f.endsWith(".lua"));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const first = readFileSync(new URL(f, LUA_DIR), "utf8").split("\n", 1)[0];
      // every script writes: Redis must refuse it whole at maxmemory, before it runs
      expect(first, f).toBe("#!lua");
    }
  });

  it.each(Object.keys(SCRIPTS) as ScriptName[])(
    "%s is sent with the shebang as its very first line and no other shebang",
    (name) => {
      const source = scriptSource(name);
      expect(source.startsWith("#!lua\n")).toBe(true);
      expect(source.match(/^#!/gm)).toHaveLength(1);
      // the injections happened
      expect(source).not.toMatch(/^--@(TABLES|ADMIT|ADD_STANDARD_JOB)$/m);
    },
  );
});
