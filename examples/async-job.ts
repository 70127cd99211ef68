/**
 * A runnable asynchronous job: it works in steps, heartbeats (UPDATE) after each one, stops when the
 * scheduler cancels it (the gateway's X-ESS-Cancel-Requested on a heartbeat), and reports its result.
 *
 *   GATEWAY_URL=http://127.0.0.1:8080 REQUEST_ID=42 npx tsx examples/async-job.ts
 *
 * REQUEST_HANDLE: the handle the scheduler gave this execution; without it the job registers the
 * request itself (demo only: normally the scheduler registers and hands id and handle to the job).
 * STEPS (default 10) and STEP_MS (default 500) shape the work.
 */
import { EssJobClient } from "@ess/client";

const baseUrl = process.env.GATEWAY_URL ?? "http://127.0.0.1:8080";
const requestId = process.env.REQUEST_ID ?? String(Date.now());
const steps = Number(process.env.STEPS ?? 10);
const stepMs = Number(process.env.STEP_MS ?? 500);

const log = (msg: string, extra: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ job: requestId, msg, ...extra }));

async function handle(): Promise<string> {
  if (process.env.REQUEST_HANDLE) return process.env.REQUEST_HANDLE;
  const res = await fetch(`${baseUrl}/gateway/v1/requests/${requestId}/executions`, { method: "POST" });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { requestHandle: string }).requestHandle;
}

async function main(): Promise<void> {
  const client = new EssJobClient({ baseUrl, requestId, requestHandle: await handle() });
  log("started", { steps });
  for (let step = 1; step <= steps; step++) {
    await new Promise((r) => setTimeout(r, stepMs)); // the work of one step
    const { cancelRequested } = await client.heartbeat(`step ${step} of ${steps}`);
    if (cancelRequested) {
      // confirm with checkInCancelling (also a check-in), clean up, then acknowledge the cancel
      log("cancel requested", { step, confirmed: await client.checkInCancelling() });
      await client.reportStatus("CANCEL", `stopped after step ${step}`);
      log("cancelled", { step });
      return;
    }
    log("step done", { step });
  }
  await client.reportStatus("SUCCESS", `${steps} steps done`);
  log("succeeded");
}

main().catch((err: Error) => {
  log("failed", { err: err.message });
  process.exit(1);
});
