import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { SCRIPTS, type ScriptName, scriptSource } from "./scripts.js";

let shas: Map<string, string> | undefined;

/** name-N → [sha1, source] of the project's scripts, as the connection sends them. */
function scriptSources(): Map<string, string> {
  if (!shas) {
    shas = new Map();
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) shas.set(name, scriptSource(name));
  }
  return shas;
}

/**
 * True once every project script is in Redis's script cache; loads the missing ones (after a Redis
 * restart the cache is empty). For readiness probes, not the hot path.
 */
export async function ensureScriptsLoaded(redis: Redis): Promise<boolean> {
  const sources = [...scriptSources().values()];
  const digests = sources.map((s) => createHash("sha1").update(s).digest("hex"));
  const exists = (await redis.script("EXISTS", ...digests)) as number[];
  for (let i = 0; i < sources.length; i++) {
    if (exists[i] !== 1) await redis.script("LOAD", sources[i] as string);
  }
  return true;
}

/**
 * Seconds one PING takes to come back; rejects when Redis does not answer within timeoutMs. For the
 * round-trip gauge measured at scrape time, not the hot path.
 */
export async function pingSeconds(redis: Pick<Redis, "ping">, timeoutMs: number): Promise<number> {
  const start = process.hrtime.bigint();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([redis.ping(), timeout]);
    return Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    clearTimeout(timer);
  }
}
