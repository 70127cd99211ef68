import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  CALLBACK_STATES,
  CANCEL_RULES,
  FORCE_CANCEL_RULES,
  isTerminal,
  OPERATOR_REARM_STATES,
  REARM_CLEARS,
  REGISTER_RULE,
  RESUMABLE_STATE,
  STATE_NAMES,
  TIMEOUT_RULES,
  TIMEOUT_STATES,
  TRANSITIONS,
  timeoutMessage,
} from "@ess/domain";
import { Command, type Redis } from "ioredis";
import { REPLY } from "./codes.js";
import { historyCodeTables } from "./history-codec.js";

/** Serialises plain data (objects, arrays, strings, numbers, booleans) as a Lua table constructor. */
export function toLuaLiteral(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `{${value.map(toLuaLiteral).join(",")}}`;
  if (value !== null && typeof value === "object") {
    const items = Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `[${JSON.stringify(k)}]=${toLuaLiteral(v)}`);
    return `{${items.join(",")}}`;
  }
  throw new Error(`cannot serialise ${String(value)} to Lua`);
}

/** `local NAME = <literal>` lines for named values. */
function luaLocals(values: Record<string, unknown>): string {
  return Object.entries(values)
    .map(([name, value]) => `local ${name} = ${toLuaLiteral(value)}`)
    .join("\n");
}

/** A list of names as a Lua set (name → true). */
const luaSet = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, true]));

/**
 * Includes generated from TypeScript, so each rule has one source: the domain's tables
 * (packages/domain) and the reply codes (codes.ts). A script names them like file includes.
 */
const GENERATED: Record<string, (seen: Set<string>) => string> = {
  /** TRANSITIONS: callback state → status → rule */
  transitions: () => luaLocals({ TRANSITIONS }),
  /** TERMINAL: state → true for the states a request never leaves */
  terminal: () => luaLocals({ TERMINAL: luaSet(STATE_NAMES.filter(isTerminal)) }),
  /** CALLBACK_STATES: state → true for the states that take callbacks */
  callbackStates: () => luaLocals({ CALLBACK_STATES: luaSet(CALLBACK_STATES) }),
  /** the scheduler side: register, cancel, forceCancel and timeout rules */
  schedulerRules: () =>
    luaLocals({
      REGISTER_RULE,
      RESUMABLE_STATE,
      OPERATOR_REARM_STATES: luaSet(OPERATOR_REARM_STATES),
      REARM_CLEARS: [...REARM_CLEARS],
      CANCEL_RULES,
      FORCE_CANCEL_RULES,
      TIMEOUT_RULES,
      TIMEOUT_STATES: luaSet(TIMEOUT_STATES),
      // a string.format pattern: %s is the requestTimeout in minutes
      TIMEOUT_MESSAGE: timeoutMessage("%s"),
    }),
  /** H_OUTCOME, H_STATUS, H_STATE: name → code character of a packed history entry (history-codec.ts) */
  historyCodes: () => luaLocals(historyCodeTables()),
  /** CODE: reply code name → number */
  codes: () => luaLocals({ CODE: REPLY }),
  /**
   * admit-2, composed into admit-enqueue-11 and admit-enqueue-batch (only a script's first line may be a
   * shebang) without its standalone entry: the composing script calls its admit() per callback; what
   * the composing script included above is not included again (its locals are in scope)
   */
  admit: (seen) => composedEntry("admit", seen),
  /**
   * apply-8, composed into apply-batch the same way, without its standalone entry (the lines from
   * `--@standalone` on): the composing script calls its run(KEYS, ARGV) per callback
   */
  apply: (seen) => composedEntry("apply", seen),
  /** BullMQ's addStandardJob, as the installed bullmq ships it */
  addStandardJob: () => composable(bullmqAddStandardJob()),
};

/** The names a script may include: the generated ones and the files of ./lua/includes. */
export function includeNames(): string[] {
  const files = readdirSync(new URL("./lua/includes/", import.meta.url)).filter((f) => f.endsWith(".lua"));
  return [...Object.keys(GENERATED), ...files.map((f) => f.slice(0, -".lua".length))];
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

const STANDALONE = /^--@standalone\n[\s\S]*$/m;

/** A composed script without the lines that run it on its own (from its `--@standalone` line on). */
function standaloneEntryOff(source: string): string {
  if (!STANDALONE.test(source)) throw new Error("a composed script must end in a '--@standalone' section");
  return source.replace(STANDALONE, "");
}

/** A script composed into another: without its shebang and its standalone entry, its includes resolved. */
function composedEntry(name: ScriptName, seen: Set<string>): string {
  return resolveIncludes(standaloneEntryOff(composable(readScriptFile(scriptFile(name)))), seen);
}

const INCLUDE = /^--@include ([A-Za-z0-9_-]+)$/gm;

/** Include sources that replace the named includes (a measurement of a script without a fragment). */
type IncludeOverrides = Readonly<Record<string, string>>;

/** An include's source: generated, or the file ./lua/includes/<name>.lua (which may include others). */
function includeSource(name: string, seen: Set<string>, overrides: IncludeOverrides): string {
  const override = overrides[name];
  if (override !== undefined) return override;
  const generated = GENERATED[name];
  if (generated) return generated(seen);
  let source: string;
  try {
    source = readFileSync(new URL(`./lua/includes/${name}.lua`, import.meta.url), "utf8");
  } catch {
    throw new Error(`unknown Lua include '${name}' (neither generated nor lua/includes/${name}.lua)`);
  }
  return resolveIncludes(source, seen, overrides);
}

/** Replaces every `--@include <name>` line with the include's source; each name once per script. */
function resolveIncludes(source: string, seen: Set<string>, overrides: IncludeOverrides = {}): string {
  return source.replace(INCLUDE, (_, name: string) => {
    if (seen.has(name)) return `-- ${name}: included above`;
    seen.add(name);
    return includeSource(name, seen, overrides);
  });
}

/**
 * Reads a script file from ./lua and resolves its includes (`--@include <name>` lines: a file of
 * ./lua/includes, a domain table, the reply codes, or a composed script), each once, the way
 * BullMQ's loader does. The shebang stays the first line: includes replace lines further down,
 * and a composed script's own shebang is dropped.
 */
export function loadScript(name: string, overrides: IncludeOverrides = {}): string {
  return resolveIncludes(readScriptFile(name), new Set(), overrides);
}

/** A Lua source with its `--@include` lines resolved (each name once). */
export function expandIncludes(source: string): string {
  return resolveIncludes(source, new Set());
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

/** name → number of (fixed) keys; the numbers are also in the file names (BullMQ's convention). */
export const SCRIPTS = {
  admit: 2,
  apply: 8,
  // the callbacks of one batch job, each through apply with its own keys (apply's eight per callback)
  applyBatch: 0,
  register: 5,
  cancel: 7,
  sweepTimeouts: 8,
  // the request index's upkeep for the timeout sweep
  pruneIndex: 2,
  // admit and BullMQ's add in one round trip
  admitEnqueue: 11,
  // the callbacks of one batch group admitted together, each through admit, enqueued as one job
  admitEnqueueBatch: 9,
  // read-only (no-writes): request details while Redis is full
  read: 2,
  // a webhook subscription, atomic with the request's event sequence number
  subscribe: 3,
  // an operator console action in the request's history (one that changes no state)
  operatorNote: 2,
  // a console bulk action's state change (compare and set), with its id snapshot
  bulkTransition: 3,
  // read-only (no-writes): a BullMQ queue's job counts by state and its oldest waiting job
  queueCounts: 1,
} as const;
export type ScriptName = keyof typeof SCRIPTS;

/**
 * Scripts that take more keys than their fixed ones, after them (apply: the job keys of a gap; the
 * batch scripts: the keys of each callback). They are called with the number of keys first.
 */
export const VARIABLE_KEYS: ReadonlySet<ScriptName> = new Set<ScriptName>(["apply", "applyBatch", "admitEnqueueBatch"]);

/** Script file base names where they differ from the command name. */
const FILES: Partial<Record<ScriptName, string>> = {
  admitEnqueue: "admit-enqueue",
  admitEnqueueBatch: "admit-enqueue-batch",
  applyBatch: "apply-batch",
};

/**
 * The source a script is sent as (file `<file>-<numKeys>.lua`, its includes resolved). `overrides`
 * replaces includes by name, for measurements only (the bench's apply script without its index).
 */
export function scriptSource(name: ScriptName, overrides: IncludeOverrides = {}): string {
  return loadScript(scriptFile(name), overrides);
}

/** A script's file base name: `<file>-<numKeys>`. */
function scriptFile(name: ScriptName): string {
  return `${FILES[name] ?? name}-${SCRIPTS[name]}`;
}

export type Reply = (string | number | null)[];

/** A connection with the project's scripts defined (EVALSHA, loading on NOSCRIPT). */
export type ScriptedRedis = Redis & {
  [K in `ess_${ScriptName}`]: (...args: (string | number | Buffer)[]) => Promise<Reply>;
};

/** Defines the project's scripts on a connection. Idempotent. */
export function defineScripts(redis: Redis): ScriptedRedis {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    const command = `ess_${name}`;
    const lua = scriptSource(name as ScriptName);
    if (command in redis) continue;
    if (VARIABLE_KEYS.has(name as ScriptName)) redis.defineCommand(command, { lua });
    else redis.defineCommand(command, { numberOfKeys, lua });
  }
  return redis as ScriptedRedis;
}

const shas = new Map<ScriptName, string>();
/** The SHA-1 a script is cached under in Redis (EVALSHA). */
function scriptSha(name: ScriptName): string {
  let sha = shas.get(name);
  if (sha === undefined) {
    sha = createHash("sha1").update(scriptSource(name)).digest("hex");
    shas.set(name, sha);
  }
  return sha;
}

/** Array.prototype.flat of an argument list that is flat already. */
function alreadyFlat<T>(this: T[]): T[] {
  return this;
}

/**
 * Calls a script of VARIABLE_KEYS as `redis.ess_<name>(numberOfKeys, ...keys, ...args)` does, for the
 * calls with hundreds of arguments (a batch's): ioredis flattens every command's argument list with
 * Array.prototype.flat, which on Node 20 costs about 150 ns per argument even when nothing is nested
 * (70 µs for apply-batch's 400 arguments at 20 callbacks; admit-enqueue-batch passes 9 per callback). The list handed over here is flat and
 * says so. A Redis that does not hold the script (NOSCRIPT: a restart, SCRIPT FLUSH) ran nothing; the
 * call is then made the ordinary way, which loads it.
 */
export function callScriptFlat(
  redis: ScriptedRedis,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[],
): Promise<Reply> {
  const argv: (string | number | Buffer)[] = [scriptSha(name), keys.length];
  for (const k of keys) argv.push(k);
  for (const a of args) argv.push(a);
  Object.defineProperty(argv, "flat", { value: alreadyFlat });
  const command = new Command("evalsha", argv, { replyEncoding: "utf8" });
  return (redis.sendCommand(command) as Promise<Reply>).catch((err: Error) => {
    if (!String(err?.message).includes("NOSCRIPT")) throw err;
    return redis[`ess_${name}`](keys.length, ...keys, ...args);
  });
}
