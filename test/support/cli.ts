import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ROOT } from "@ess/testing";

const run = promisify(execFile);

/** Runs the operator CLI as a user would (npm run cli -- ...), with `env` over the test's environment. */
export async function runCli(env: Record<string, string>, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "apps/cli/src/main.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}
