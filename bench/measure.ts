// Measurements shared by the bench (bench/run.ts) and the soak (scripts/soak.ts): process CPU and
// RSS from Linux /proc, and the backlog of the partition queues.
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";

/** utime + stime of a process in seconds (Linux /proc). */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** VmRSS of a process in MiB. */
export function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : 0;
  } catch {
    return 0;
  }
}

/** Jobs waiting or active over all partition queues of a key prefix. */
export async function backlog(redis: Redis, keyPrefix: string, partitions: number): Promise<number> {
  const pipe = redis.pipeline();
  for (let p = 0; p < partitions; p++) {
    const q = `${keyPrefix}:{p${p}}:callbacks`;
    // delayed jobs are gap checks due GAP_TIMEOUT_MS later: not backlog
    pipe.llen(`${q}:wait`).llen(`${q}:active`);
  }
  const res = (await pipe.exec()) ?? [];
  return res.reduce((sum, [, n]) => sum + Number(n ?? 0), 0);
}

/** Waits until the backlog is empty; false after timeoutMs. */
export async function waitDrained(
  redis: Redis,
  keyPrefix: string,
  partitions: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await backlog(redis, keyPrefix, partitions)) === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
