import { findRedisServer } from "./redis-server.js";

/**
 * The redis-server binary a suite needs to kill and restart its own Redis. When it is missing the
 * suite must not pass by skipping where it matters: in CI (CI set) this throws, so the file fails
 * naming what to install; on a developer's machine it warns and returns null (`describe.skipIf(!bin)`).
 */
export function requireRedisServer(suite: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const bin = findRedisServer();
  if (bin) return bin;
  const message = `${suite}: redis-server is not on PATH (apt-get install -y redis-server; .ci/run installs it)`;
  if (env.CI && env.CI !== "false" && env.CI !== "0") throw new Error(`${message}; CI must run this suite`);
  console.warn(`${message}; skipped`);
  return null;
}
