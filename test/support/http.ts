/** Tiny HTTP helpers for the e2e suites (the real wire, through fetch). */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

export interface Registered {
  requestId: number;
  requestHandle: string;
  execution: number;
  pausedState?: string | null;
}

/** Registers (or re-arms) a request through the gateway. */
export async function registerRequest(
  base: string,
  id: string,
  body: Record<string, unknown> = {},
): Promise<Registered> {
  const res = await postJson(`${base}/gateway/v1/requests/${id}/executions`, body);
  if (res.status !== 201) throw new Error(`register ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Registered;
}

/** Posts one executionStatus callback; returns the HTTP status. */
export async function callback(
  base: string,
  id: string,
  requestHandle: string,
  status: string,
  statusMessage?: string,
) {
  const res = await postJson(`${base}/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
    requestHandle,
    status,
    ...(statusMessage === undefined ? {} : { statusMessage }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** GET request details (parsed; requestId within 2^53 in these suites). */
export async function details(
  base: string,
  id: string,
): Promise<Record<string, unknown> & { history: Record<string, unknown>[] }> {
  const res = await fetch(`${base}/ess/rest/scheduler/v1/requests/${id}`);
  if (res.status !== 200) throw new Error(`details ${id}: ${res.status}`);
  return (await res.json()) as Record<string, unknown> & { history: Record<string, unknown>[] };
}
