import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { isTerminal, STATE_NAMES, TRANSITIONS } from "@ess/domain";
import type { Redis } from "ioredis";

/** Serialises plain data (objects, strings, numbers, booleans) as a Lua table constructor. */
export function toLuaLiteral(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value !== null && typeof value === "object") {
    const items = Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `[${JSON.stringify(k)}]=${toLuaLiteral(v)}`);
    return `{${items.join(",")}}`;
  }
  throw new Error(`cannot serialise ${String(value)} to Lua`);
}

/**
 * The domain tables as Lua: TRANSITIONS (state → status → rule, from packages/domain) and
 * TERMINAL (state → true). Injected where a script says `--@TABLES`.
 */
export function luaTables(): string {
  const terminal = Object.fromEntries(STATE_NAMES.filter(isTerminal).map((s) => [s, true]));
  return `local TRANSITIONS = ${toLuaLiteral(TRANSITIONS)}\nlocal TERMINAL = ${toLuaLiteral(terminal)}`;
}

/**
 * The first line of every script file: a Redis 7 shebang declaring the script's flags. With flags
 * declared, Redis checks them before the script runs: a script without `no-writes` is refused with
 * OOM as a whole while Redis is at `maxmemory` under `noeviction`, instead of failing at its first
 * write (or, after a first write that frees memory, not at all). Every script of the project writes,
 * so none declares `no-writes`; none only frees memory, so none declares `allow-oom`.
 */
const SHEBANG = /^#!lua(?: flags=[a-z-]*(?:,[a-z-]+)*)?\n/;

/** A script file's text (./lua/<name>.lua); throws when its first line is not a `#!lua` shebang. */
function readScriptFile(name: string): string {
  const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
  if (!SHEBANG.test(source)) throw new Error(`lua/${name}.lua must start with a '#!lua' shebang line`);
  return source;
}

/** A source composed into another script: without its shebang (only a script's first line may be one). */
function composable(source: string): string {
  return source.replace(SHEBANG, "");
}

/**
 * Reads a script file from ./lua and injects the domain tables and the sources it composes. The
 * shebang stays the first line: injections replace marker lines further down, and a composed
 * script's own shebang is dropped.
 */
export function loadScript(name: string): string {
  return readScriptFile(name)
    .replace(/^--@TABLES$/m, () => luaTables())
    .replace(/^--@ADMIT$/m, () => composable(loadScript("admit-2")))
    .replace(/^--@INDEX$/m, () => composable(loadScript("index")))
    .replace(/^--@ADD_STANDARD_JOB$/m, () => composable(bullmqAddStandardJob()));
}

/**
 * BullMQ's addStandardJob script as the installed bullmq ships it (includes resolved): the very script
 * Queue.add runs for a job without delay, priority or parent. Checked, so a bullmq upgrade that changes
 * its contract fails loudly at start-up rather than enqueueing differently.
 */
function bullmqAddStandardJob(): string {
  // the CommonJS build is the one Node loads for `import "bullmq"` (its typings sit beside the ESM build)
  const { addStandardJob } = createRequire(import.meta.url)("bullmq/dist/cjs/scripts/addStandardJob-9.js") as {
    addStandardJob: { content: string; keys: number };
  };
  const { content, keys } = addStandardJob;
  if (keys !== 9 || !content.includes("local args = cmsgpack.unpack(ARGV[1])") || !content.includes("return jobId")) {
    throw new Error("bullmq's addStandardJob script changed its contract: review admit-enqueue-11.lua");
  }
  return content;
}

/** name → number of keys; the numbers are also in the file names (BullMQ's convention). */
export const SCRIPTS = {
  admit: 2,
  apply: 7,
  register: 5,
  // scheduler side
  cancel: 7,
  sweepTimeouts: 4,
  // admit and BullMQ's add in one round trip
  admitEnqueue: 11,
  // read-only (no-writes): request details while Redis is full
  read: 2,
  // a webhook subscription, atomic with the request's event sequence number
  subscribe: 3,
} as const;
export type ScriptName = keyof typeof SCRIPTS;

/** Script file base names where they differ from the command name. */
const FILES: Partial<Record<ScriptName, string>> = { admitEnqueue: "admit-enqueue" };

/** The source a script is sent as (file `<file>-<numKeys>.lua`, tables and composed sources injected). */
export function scriptSource(name: ScriptName): string {
  return loadScript(`${FILES[name] ?? name}-${SCRIPTS[name]}`);
}

type Reply = (string | number | null)[];

/** A connection with the project's scripts defined (EVALSHA, loading on NOSCRIPT). */
export type ScriptedRedis = Redis & {
  [K in `ess_${ScriptName}`]: (...args: (string | number | Buffer)[]) => Promise<Reply>;
};

/** Defines the project's scripts on a connection. Idempotent. */
export function defineScripts(redis: Redis): ScriptedRedis {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    const command = `ess_${name}`;
    if (!(command in redis)) redis.defineCommand(command, { numberOfKeys, lua: scriptSource(name as ScriptName) });
  }
  return redis as ScriptedRedis;
}
