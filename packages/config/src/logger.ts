import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/** The levels LOG_LEVEL takes; "silent" logs nothing. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** pino's level number of "warn": lines at this level and above are written at once. */
const WARN = 40;
/** Lines buffered beyond this many characters are written without waiting for the turn to end. */
const MAX_BUFFERED = 64 * 1024;

/**
 * A pino destination that writes the lines of one event-loop turn with one system call: under load
 * a turn serves many requests, each with its access-log line, and a write per line was the largest
 * single cost of logging. Lines are written, in order, when the turn's I/O callbacks are done
 * (setImmediate), at once for warn and above (with everything before them), and on process exit;
 * only a process killed outright can lose the lines of the turn it was in.
 */
export class TurnBufferedDestination {
  /** pino sets lastLevel before each write when a destination asks for it. */
  readonly [pino.symbols.needsMetadataGsym] = true;
  lastLevel = 0;
  private buffered = "";
  private scheduled = false;
  private readonly flushTurn = () => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly out: { write(s: string): unknown } = pino.destination({ fd: 1, sync: true })) {}

  write(line: string): void {
    if (this.buffered === "") pending.add(this);
    this.buffered += line;
    if (this.lastLevel >= WARN || this.buffered.length > MAX_BUFFERED) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushTurn);
    }
  }

  /** Writes what is buffered (synchronously, as pino's default stdout destination does). */
  flush(): void {
    if (this.buffered === "") return;
    const s = this.buffered;
    this.buffered = "";
    pending.delete(this);
    this.out.write(s);
  }
}

let stampedAt = Number.NaN;
let stamp = "";
/**
 * pino's ISO time field (`,"time":"2026-01-02T03:04:05.678Z"`, the text of pino.stdTimeFunctions.isoTime),
 * formatted once per millisecond: under load many log lines share one.
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

/** Destinations holding lines, written on exit (process.exit included). */
const pending = new Set<TurnBufferedDestination>();
process.on("exit", () => {
  for (const d of pending) d.flush();
});

/**
 * Structured JSON logs (one line per event) for a process, on stdout. Handles and credentials are
 * redacted wherever a caller passes them by mistake.
 */
export function createLogger(
  config: { LOG_LEVEL: LogLevel },
  service: string,
  destination: { write(s: string): unknown } = new TurnBufferedDestination(),
): Logger {
  return pino(
    {
      level: config.LOG_LEVEL,
      base: { service, pid: process.pid },
      timestamp: isoTime,
      redact: {
        paths: [
          "requestHandle",
          "*.requestHandle",
          "handle",
          "*.handle",
          "authorization",
          "*.authorization",
          "password",
          "*.password",
          "token",
          "*.token",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

/**
 * The per-request line's logger (the gateway's access log, the worker's job log): the process logger
 * without redaction. Those lines are built field by field from values that are never a handle or a
 * credential, and pino's wildcard redaction paths (`*.requestHandle`, ...) otherwise run on every field
 * of every line: about half the cost of a log line, measured in BENCHMARKS.md.
 */
export function perRequestLogger(log: Logger): Logger {
  return log.child({}, { redact: [] });
}

/** A JSON fragment of a line's fields (`,"key":value...`), each value already JSON. */
export type LineFields = string;

/**
 * A writer of one message at one level, for lines written per callback at tens of thousands a second
 * (the worker's job log): the caller hands the fields as a JSON fragment it built itself, and the line
 * is the one `log[level](fields, msg)` writes, byte for byte (pinned by logger.test.ts), without pino's
 * per-field serialisation (a field lookup, a key escape and a value escape for each field), which
 * was most of such a line's cost. Undefined for a logger this cannot imitate (a mixin, a log formatter,
 * a write hook, a nested key or a message prefix); the caller then logs the ordinary way.
 * Nothing is escaped: the fragment must be valid JSON and hold no handle or credential.
 */
export function lineWriter(log: Logger, level: "info", msg: string): ((fields: LineFields) => void) | undefined {
  // msgPrefixSym is in pino.symbols but not in its typings
  const s = pino.symbols as typeof pino.symbols & { msgPrefixSym: symbol };
  const l = log as unknown as Record<symbol, unknown>;
  const formatters = l[s.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[s.hooksSym] as { streamWrite?: unknown } | undefined;
  if (
    typeof l[s.timeSym] !== "function" ||
    typeof l[s.lsCacheSym] !== "object" ||
    typeof l[s.chindingsSym] !== "string" ||
    typeof l[s.endSym] !== "string" ||
    l[s.mixinSym] ||
    formatters?.log ||
    hooks?.streamWrite ||
    l[s.nestedKeySym] ||
    l[s.msgPrefixSym]
  )
    return undefined;
  const num = log.levels.values[level] as number;
  const head = (l[s.lsCacheSym] as Record<number, string>)[num];
  if (head === undefined) return undefined;
  const time = l[s.timeSym] as () => string;
  const tail = `,${JSON.stringify(l[s.messageKeySym] ?? "msg")}:${JSON.stringify(msg)}${l[s.endSym] as string}`;
  return (fields) => {
    if (!log.isLevelEnabled(level)) return;
    const t = time();
    const stream = l[s.streamSym] as { write(s: string): unknown } & Record<string | symbol, unknown>;
    if (stream[s.needsMetadataGsym] === true) {
      stream.lastLevel = num;
      stream.lastMsg = msg;
      stream.lastTime = t.slice(l[s.timeSliceIndexSym] as number);
      stream.lastLogger = log;
    }
    stream.write(head + t + (l[s.chindingsSym] as string) + fields + tail);
  };
}

/** A string as a JSON value: as it is when it needs no escaping (ids, codes), else JSON.stringify. */
export function jsonString(value: string): string {
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}
const PLAIN = /^[A-Za-z0-9 _.:/-]*$/;
