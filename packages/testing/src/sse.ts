/** One Server-Sent Event as read off the wire. */
export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads SSE events from a response body until `want` returns true for the list so far (or the
 * timeout passes), then cancels the stream. Skips comments and the initial "ready" event.
 */
export async function readSse(
  res: Response,
  want: (events: SseEvent[]) => boolean,
  timeoutMs = 15000,
): Promise<SseEvent[]> {
  const body = res.body;
  if (!body) throw new Error("no body");
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let buf = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (!want(events)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for SSE events; got ${JSON.stringify(events)}`);
      let timer: NodeJS.Timeout | undefined;
      const next = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`timed out waiting for SSE events; got ${JSON.stringify(events)}`)),
            left,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      if (next.done) break;
      buf += next.value;
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const e: SseEvent = { data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") e.id = value;
          else if (field === "event") e.event = value;
          else if (field === "data") data.push(value);
        }
        e.data = data.join("\n");
        if (data.length > 0 && e.event !== "ready") events.push(e);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return events;
}
