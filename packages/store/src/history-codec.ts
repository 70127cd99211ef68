import { CALLBACK_STATUSES, STATES } from "@ess/domain";

/**
 * The packed history entry. Stored entries hold the positions of HISTORY_OUTCOMES and
 * CALLBACK_STATUSES and the states' ESS codes for as long as the request is retained: those lists
 * only ever grow at their end. Every history item is one short string in the request's history list
 * (newest first), written by the Lua include 'history' and decoded here, the one place that reads it.
 *
 *   <head>       outcome and status in one character: HEAD[o * STATUS_BASE + s], o and s their
 *                position in HISTORY_OUTCOMES and CALLBACK_STATUSES plus 1, 0 when absent
 *   <from><to>   one character each: the state's ESS code (STATES) in base 36, '_' when absent;
 *                <to> left out when it equals <from>
 *   then tagged fields, a capital letter and a value in [-0-9a-z]* (integers in base 36):
 *     A  appliedAt, as the ms since the next older entry with an appliedAt ('' = 0)
 *     B  appliedAt - acceptedAt
 *     S  seq, as the step from the next older entry with a seq ('' = 1); the entry of a
 *        callback (SEQ_OUTCOMES) has a seq without S when the step is 1, and none with N
 *     Q  lastSeq - seq
 *     E  execution ('' = the entry has none; no E = execution 1)
 *     P  reason 'resumed'      I<state> reason 'request is <state>'
 *     G  reason 'gap open <n> ms'      X<current> reason 'stale execution <execution> (current <current>)'
 *   then at most one tail, the rest of the string:
 *     M<message>                the message, as it came
 *     J<json>                   every other field (and the message) as a JSON object
 *
 * The header, '<appliedAt>,<seq>' of the newest entry that had them (base 36, '' when none had), is
 * the chain the A and S steps count back from: the request hash's field HISTORY_HEAD_FIELD. A list
 * written before the header moved there ends in it, as an element '#<appliedAt>,<seq>' (the writers
 * move it into the hash at their next entry). Trimming the oldest entry breaks nothing (its step is
 * never needed). An element that starts with '{' is an entry stored as JSON (before packing).
 */
export const HISTORY_OUTCOMES = [
  "registered",
  "applied",
  "late",
  "ignored",
  "skipped",
  "cancelRequested",
  "forceCancelled",
  "timedOut",
  // an action taken in the operator console: action, actor and reason (after the entry of the move it made)
  "operator",
] as const;
export type HistoryOutcome = (typeof HISTORY_OUTCOMES)[number];

/** The request hash's field that holds its history's header (internal: not one of the fields GET shows). */
export const HISTORY_HEAD_FIELD = "historyHead";

/** The outcomes of a callback: their entries have a seq. */
export const SEQ_OUTCOMES: readonly HistoryOutcome[] = ["applied", "late", "ignored", "skipped"];

/** state name ↔ code character: the ESS numeric code in base 36 */
const STATE_CODE = Object.fromEntries(STATES.map((s) => [s.name, s.code.toString(36)]));
const STATE_BY_CODE = new Map<string, string>(STATES.map((s) => [s.code.toString(36), s.name]));
const positions = (names: readonly string[]) => Object.fromEntries(names.map((n, i) => [n, i + 1]));

/** Outcome and status codes per head character: statuses and "no status". */
const STATUS_BASE = CALLBACK_STATUSES.length + 1;
/** The head characters: printable ASCII from '$', without '{' (a JSON entry) and '#' (the header). */
const HEAD = Array.from({ length: 0x7f - 0x24 }, (_, i) => String.fromCharCode(0x24 + i))
  .filter((c) => c !== "{")
  .join("");

/** The code tables, name → code character, for the Lua include 'historyCodes'. */
export function historyCodeTables() {
  if (STATES.some((s) => s.code >= 36)) throw new Error("a state code past 35: a state's code is one base-36 digit");
  if ((HISTORY_OUTCOMES.length + 1) * STATUS_BASE > HEAD.length) throw new Error("too many outcomes and statuses");
  return {
    H_OUTCOME: positions(HISTORY_OUTCOMES),
    H_STATUS: positions(CALLBACK_STATUSES),
    H_STATUS_BASE: STATUS_BASE,
    H_HEAD: HEAD,
    H_STATE: STATE_CODE,
    H_SEQ_OUTCOME: Object.fromEntries(SEQ_OUTCOMES.map((o) => [o, true])),
    H_HEAD_FIELD: HISTORY_HEAD_FIELD,
  };
}

const ABSENT = "_";
const TAG = /([A-Z])([-0-9a-z]*)/y;

function stateOf(c: string | undefined): string | undefined {
  if (c === undefined || c === ABSENT) return undefined;
  const name = STATE_BY_CODE.get(c);
  if (name === undefined) throw new Error(`history entry: unknown code '${c}'`);
  return name;
}

const int36 = (v: string, empty: number) => (v === "" ? empty : Number.parseInt(v, 36));

/**
 * A request's history list as LRANGE returns it (newest first) and its hash's HISTORY_HEAD_FIELD
 * (null or undefined when the hash has none: a list that ends in its header) → its entries, newest first.
 */
export function decodeHistory(raw: readonly string[], head?: string | null): Record<string, unknown>[] {
  let entries = raw;
  let header = head ?? undefined;
  const last = raw.at(-1);
  if (last?.startsWith("#")) {
    entries = raw.slice(0, -1);
    header ??= last.slice(1);
  }
  let time: number | undefined;
  let seq: number | undefined;
  if (header !== undefined) {
    const [t = "", s = ""] = header.split(",");
    time = t === "" ? undefined : Number.parseInt(t, 36);
    seq = s === "" ? undefined : Number.parseInt(s, 36);
  }
  return entries.map((packed) => {
    if (packed.startsWith("{")) return JSON.parse(packed) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    const head = HEAD.indexOf(packed[0] ?? "");
    if (head < 0) throw new Error(`history entry: unknown head '${packed[0]}'`);
    const outcome = HISTORY_OUTCOMES[Math.floor(head / STATUS_BASE) - 1];
    if (outcome !== undefined) out.outcome = outcome;
    let execution: number | undefined = 1;
    let applied: number | undefined;
    let lag: number | undefined;
    let lastSeq: number | undefined;
    let reason: string | undefined;
    let tail: Record<string, unknown> = {};
    let hasSeq = (SEQ_OUTCOMES as readonly (string | undefined)[]).includes(outcome);
    let seqStep = 1;
    const hasTo = /^[0-9a-z_]$/.test(packed[2] ?? "");
    const from = stateOf(packed[1]);
    const to = hasTo ? stateOf(packed[2]) : from;
    TAG.lastIndex = hasTo ? 3 : 2;
    while (TAG.lastIndex < packed.length) {
      const at = TAG.lastIndex;
      const m = TAG.exec(packed);
      if (!m) throw new Error(`history entry: cannot read '${packed}' at ${at}`);
      const [, tag, v = ""] = m;
      if (tag === "M" || tag === "J") {
        const rest = packed.slice(at + 1);
        tail = tag === "M" ? { message: rest } : (JSON.parse(rest) as Record<string, unknown>);
        break;
      }
      switch (tag) {
        case "A":
          applied = time;
          if (time !== undefined) time -= int36(v, 0);
          break;
        case "B":
          lag = int36(v, 0);
          break;
        case "S":
          hasSeq = true;
          seqStep = int36(v, 1);
          break;
        case "N":
          hasSeq = false;
          break;
        case "Q":
          lastSeq = int36(v, 0);
          break;
        case "E":
          execution = v === "" ? undefined : int36(v, 1);
          break;
        case "P":
          reason = "resumed";
          break;
        case "I":
          reason = `request is ${stateOf(v)}`;
          break;
        case "G":
          reason = `gap open ${int36(v, 0)} ms`;
          break;
        case "X":
          reason = `stale execution ${execution} (current ${int36(v, 0)})`;
          break;
        default:
          throw new Error(`history entry: unknown tag '${tag}' in '${packed}'`);
      }
    }
    if (hasSeq) {
      out.seq = seq;
      if (seq !== undefined) seq -= seqStep;
    }
    if (lastSeq !== undefined) out.lastSeq = (out.seq as number) + lastSeq;
    const status = CALLBACK_STATUSES[(head % STATUS_BASE) - 1];
    if (status !== undefined) out.status = status;
    if (execution !== undefined) out.execution = execution;
    if (from !== undefined) out.from = from;
    if (to !== undefined) out.to = to;
    if (applied !== undefined && lag !== undefined) out.acceptedAt = applied - lag;
    if (applied !== undefined) out.appliedAt = applied;
    if (reason !== undefined) out.reason = reason;
    return Object.assign(out, tail);
  });
}
