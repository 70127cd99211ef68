import { readFileSync } from "node:fs";
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

/** Reads a script file from ./lua and injects the domain tables. */
export function loadScript(name: string): string {
  const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
  return source.replace(/^--@TABLES$/m, () => luaTables());
}

/** name → number of keys; the numbers are also in the file names (BullMQ's convention). */
export const SCRIPTS = {
  admit: 2,
  apply: 5,
  register: 3,
  // scheduler side (issue 4)
  cancel: 5,
  armTimeout: 2,
  sweepTimeouts: 2,
} as const;
export type ScriptName = keyof typeof SCRIPTS;

type Reply = (string | number | null)[];

/** A connection with the project's scripts defined (EVALSHA, loading on NOSCRIPT). */
export type ScriptedRedis = Redis & {
  [K in `ess_${ScriptName}`]: (...args: (string | number)[]) => Promise<Reply>;
};

/** Defines the project's scripts on a connection. Idempotent. */
export function defineScripts(redis: Redis): ScriptedRedis {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    const command = `ess_${name}`;
    if (!(command in redis)) {
      redis.defineCommand(command, { numberOfKeys, lua: loadScript(`${name}-${numberOfKeys}`) });
    }
  }
  return redis as ScriptedRedis;
}
