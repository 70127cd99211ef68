import { parseRequestQuery, type RequestQuery } from "@ess/contract";
import { EssError, isRequestState, parseRequestId, type RequestState } from "@ess/domain";

/** The presets of the requests page: named filters an operator reaches for first. */
export const PRESETS = {
  "needs-action": { label: "Needs action", states: ["ERROR_MANUAL_RECOVERY", "PAUSED"] },
  "auto-retrying": { label: "Auto-retrying", states: ["ERROR_AUTO_RETRY"] },
  "stuck-cancelling": { label: "Stuck in CANCELLING", states: ["CANCELLING"] },
  "timed-out": { label: "Timed out", states: [] },
  "dead-letters": { label: "With dead letters", states: [] },
} as const satisfies Record<string, { label: string; states: RequestState[] }>;
export type Preset = keyof typeof PRESETS;

/** Minutes in CANCELLING after which a request counts as stuck, unless the URL says otherwise. */
export const STUCK_MINUTES_DEFAULT = 15;

/** The requests page's filters, exactly as the URL carries them (so a view can be bookmarked). */
export interface RequestFilters {
  states: RequestState[];
  id?: string;
  jobDefinitionId?: string;
  application?: string;
  submitter?: string;
  /** submission time range, `YYYY-MM-DDTHH:MM` in UTC (what a datetime-local input sends) */
  from?: string;
  to?: string;
  partition?: number;
  preset?: Preset;
  /** the stuck-in-CANCELLING threshold */
  minutes?: number;
  cursor?: string;
}

const bad = (detail: string): never => {
  throw new EssError("INVALID_BODY", detail);
};

const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

/** Reads the filters of a query string; a malformed value is a 400 naming it. */
export function parseRequestFilters(params: URLSearchParams, partitions: number): RequestFilters {
  const out: RequestFilters = { states: [] };
  for (const raw of params.getAll("state")) {
    for (const s of raw.split(",").map((v) => v.trim())) {
      if (s === "") continue;
      if (!isRequestState(s)) bad(`state: '${s.slice(0, 40)}' is not a state`);
      if (!out.states.includes(s as RequestState)) out.states.push(s as RequestState);
    }
  }
  const text = (name: string) => {
    const v = params.get(name)?.trim();
    if (v === undefined || v === "") return undefined;
    if (v.length > 200) bad(`${name}: at most 200 characters`);
    return v;
  };
  const id = text("id");
  if (id !== undefined) out.id = parseRequestId(id) ?? bad("id: a request id is a positive integer");
  for (const k of ["jobDefinitionId", "application", "submitter"] as const) {
    const v = text(k);
    if (v !== undefined) out[k] = v;
  }
  for (const k of ["from", "to"] as const) {
    const v = text(k);
    if (v === undefined) continue;
    if (!LOCAL_TIME.test(v)) bad(`${k}: a UTC time as YYYY-MM-DDTHH:MM`);
    out[k] = v;
  }
  const partition = text("partition");
  if (partition !== undefined) {
    const p = Number(partition);
    if (!Number.isInteger(p) || p < 0 || p >= partitions) bad(`partition: one of 0-${partitions - 1}`);
    out.partition = p;
  }
  const preset = text("preset");
  if (preset !== undefined) {
    if (!Object.hasOwn(PRESETS, preset)) bad(`preset: one of ${Object.keys(PRESETS).join(", ")}`);
    out.preset = preset as Preset;
  }
  const minutes = text("minutes");
  if (minutes !== undefined) {
    const m = Number(minutes);
    if (!Number.isInteger(m) || m < 0 || m > 100000) bad("minutes: a whole number of minutes");
    out.minutes = m;
  }
  const cursor = text("cursor");
  if (cursor !== undefined) out.cursor = cursor;
  return out;
}

/** A value of `q`, single-quoted ('' for a quote inside), so that ';' in it stays part of it. */
const quote = (v: string) => `'${v.replaceAll("'", "''")}'`;

/**
 * The filters as the `q` of GET /requests, parsed by the same parser: the console asks the request
 * index exactly what the API would. A preset's states replace the chosen ones.
 */
export function toRequestQuery(f: RequestFilters, now: number): { q: string; query: RequestQuery } {
  const clauses: string[] = [];
  const states: readonly RequestState[] =
    f.preset && PRESETS[f.preset].states.length > 0 ? PRESETS[f.preset].states : f.states;
  if (states.length > 0) clauses.push(`state=${states.join(",")}`);
  if (f.jobDefinitionId !== undefined) clauses.push(`jobDefinitionId=${quote(f.jobDefinitionId)}`);
  if (f.application !== undefined) clauses.push(`application=${quote(f.application)}`);
  if (f.submitter !== undefined) clauses.push(`submitter=${quote(f.submitter)}`);
  if (f.from !== undefined) clauses.push(`submissionTime>=${f.from}Z`);
  if (f.to !== undefined) clauses.push(`submissionTime<=${f.to}Z`);
  if (f.preset === "timed-out") clauses.push("isTimedOut=true");
  if (f.preset === "stuck-cancelling") {
    const minutes = f.minutes ?? STUCK_MINUTES_DEFAULT;
    clauses.push(`stateChangeTime<=${now - minutes * 60000}`);
  }
  const q = clauses.join(";");
  return { q, query: parseRequestQuery(q, undefined) };
}

/** The filters as a query string (without the cursor unless given): the page's own, bookmarkable URL. */
export function filtersToSearch(f: RequestFilters, cursor?: string): string {
  const p = new URLSearchParams();
  if (f.preset) p.set("preset", f.preset);
  for (const s of f.states) p.append("state", s);
  if (f.id !== undefined) p.set("id", f.id);
  if (f.jobDefinitionId !== undefined) p.set("jobDefinitionId", f.jobDefinitionId);
  if (f.application !== undefined) p.set("application", f.application);
  if (f.submitter !== undefined) p.set("submitter", f.submitter);
  if (f.from !== undefined) p.set("from", f.from);
  if (f.to !== undefined) p.set("to", f.to);
  if (f.partition !== undefined) p.set("partition", String(f.partition));
  if (f.minutes !== undefined) p.set("minutes", String(f.minutes));
  if (cursor !== undefined) p.set("cursor", cursor);
  const s = p.toString();
  return s === "" ? "" : `?${s}`;
}
