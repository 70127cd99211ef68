import { parseArgs } from "node:util";
import { parseRequestQuery, QUERY_LIMIT_DEFAULT } from "@ess/contract";
import { parseRequestId } from "@ess/domain";
import {
  type AuditLog,
  type CallbackQueues,
  DEAD_LETTER_REASONS,
  type DeadLetter,
  type DeadLetterQuery,
  type DeadLetterReason,
  type DeadLetters,
  type DeliveryAttempt,
  partitionMap,
  RequestIndex,
  type RequestStore,
  WEBHOOK_QUEUE,
  type WebhookStore,
} from "@ess/store";

export const USAGE = `ess-cli — operate the ESS callback gateway (talks to Redis: REDIS_URL, KEY_PREFIX, PARTITIONS)

  dlq list    [filters] [--limit N] [--cursor C] [--json]     list dead letters, oldest first
  dlq show    <id>                                            one dead letter in full (JSON)
  dlq replay  <id>...                                         replay these now
  dlq replay  (--all | filters) [--rate N] [--wait]           bulk replay, rate-limited, in the workers
  dlq replay-status <opId>      dlq replay-cancel <opId>      follow or stop a bulk replay
  dlq purge   <id>... | --all | filters | --older-than 7d     delete dead letters
  dlq count                                                   how many dead letters there are
  request show <requestId>                                    a request's state and history (JSON)
  partitions  [--json]                                        partition -> hash slot -> master serving it now
  requests    [query] [--limit N] [--cursor C] [--json]       find requests (a table, newest first)
  audit       [--actor A] [--action X] [--target T] [--limit N] [--cursor C] [--json]
                                                              the operator audit log, newest first
  webhooks list <requestId> [--json]                          a request's webhook subscriptions
  webhooks log  <requestId> <subscriptionId> [--limit N] [--json]   its delivery attempts, newest first
  webhooks redeliver <requestId> <subscriptionId> <eventId>   send one event again now (one attempt, logged)
  webhooks rotate <requestId> <subscriptionId> [--grace S]    new signing secret (printed once); the old one
                                                              stays valid S seconds (WEBHOOK_ROTATION_GRACE_SECONDS)

filters: --partition N --request ID --status S --reason R --since T --until T
         (R: ${DEAD_LETTER_REASONS.join(", ")}; T: ISO 8601, ms since the epoch, or an age like 30m, 2h, 7d)
query:   --state S[,S] --job JOB_DEFINITION_ID --application A --submitter U --error-type T
         --since T --until T (when it entered its state with --state, else when it was submitted)
         --q 'ESS q filter' --order-by submissionTime|stateChangeTime[:asc|:desc]`;

/** What the commands need; main.ts builds it from the environment. */
export interface CliDeps {
  deadLetters: DeadLetters;
  /** the operator audit log: read by `audit`; the dlq replays and purges run here are recorded in it */
  audit: AuditLog;
  /** who runs the CLI, as the audit log names it (`cli:<os user>`) */
  actor: string;
  store: RequestStore;
  queues: CallbackQueues;
  /** webhook subscriptions (rotate needs WEBHOOK_SECRET, the key that seals their secrets) */
  webhooks: WebhookStore;
  /** default window of a rotation, s (WEBHOOK_ROTATION_GRACE_SECONDS) */
  rotationGraceSeconds: number;
  defaultRate: number;
  out: (line: string) => void;
  now?: () => number;
}

export class UsageError extends Error {}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses an ISO time, epoch ms, or an age ("7d" = seven days ago). */
export function parseTime(raw: string, now: number): number {
  const d = DURATION.exec(raw);
  if (d) return now - Number(d[1]) * (UNIT[d[2] ?? "s"] ?? 1000);
  if (/^\d+$/.test(raw)) return Number(raw);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new UsageError(`not a time: ${raw}`);
  return t;
}

const options = {
  partition: { type: "string" },
  request: { type: "string" },
  status: { type: "string" },
  reason: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  limit: { type: "string" },
  cursor: { type: "string" },
  rate: { type: "string" },
  "older-than": { type: "string" },
  grace: { type: "string" },
  all: { type: "boolean" },
  wait: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  state: { type: "string" },
  job: { type: "string" },
  application: { type: "string" },
  submitter: { type: "string" },
  "error-type": { type: "string" },
  q: { type: "string" },
  "order-by": { type: "string" },
  actor: { type: "string" },
  action: { type: "string" },
  target: { type: "string" },
} as const;

const quote = (v: string) => `'${v.replaceAll("'", "''")}'`;

/** The `requests` options as an ESS q filter: the gateway's one parser reads both. */
export function requestsFilter(v: Record<string, string | boolean | undefined>, now: number): string {
  const clauses: string[] = [];
  if (typeof v.q === "string") clauses.push(v.q);
  if (typeof v.state === "string") clauses.push(`state=${v.state.toUpperCase()}`);
  const text: [string, string][] = [
    ["job", "jobDefinitionId"],
    ["application", "application"],
    ["submitter", "submitter"],
    ["error-type", "errorType"],
  ];
  for (const [opt, field] of text) if (typeof v[opt] === "string") clauses.push(`${field}=${quote(v[opt] as string)}`);
  const time = typeof v.state === "string" ? "stateChangeTime" : "submissionTime";
  if (typeof v.since === "string") clauses.push(`${time}>=${parseTime(v.since, now)}`);
  if (typeof v.until === "string") clauses.push(`${time}<=${parseTime(v.until, now)}`);
  return clauses.join(";");
}

const iso = (ms: string | undefined) => (ms ? new Date(Number(ms)).toISOString() : "-");

/** Pads the columns of a table to their widest cell. */
function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  "));
}

function filters(v: Record<string, string | boolean | undefined>, now: number): DeadLetterQuery | null {
  const q: DeadLetterQuery = {};
  if (typeof v.partition === "string") q.partition = Number(v.partition);
  if (typeof v.request === "string") {
    const id = parseRequestId(v.request);
    if (!id) throw new UsageError(`not a request id: ${v.request}`);
    q.requestId = id;
  }
  if (typeof v.status === "string") q.status = v.status;
  if (typeof v.reason === "string") {
    if (!(DEAD_LETTER_REASONS as readonly string[]).includes(v.reason))
      throw new UsageError(`unknown reason: ${v.reason}`);
    q.reason = v.reason as DeadLetterReason;
  }
  if (typeof v.since === "string") q.from = parseTime(v.since, now);
  if (typeof v.until === "string") q.to = parseTime(v.until, now);
  return Object.keys(q).length > 0 ? q : null;
}

function row(e: DeadLetter): string {
  const at = new Date(e.deadAt).toISOString();
  return [e.id, at, e.requestId ?? "-", e.seq ?? "-", e.status ?? "-", e.reason, e.attempts, e.error.slice(0, 60)].join(
    "\t",
  );
}

function attemptRow(a: DeliveryAttempt): string {
  return [
    new Date(a.at).toISOString(),
    a.eventId || "-",
    a.seq,
    a.kind,
    a.attempt,
    a.outcome,
    a.status ?? "-",
    a.latencyMs ?? "-",
    (a.error ?? "").slice(0, 60),
  ].join("\t");
}

function requestIdArg(raw: string | undefined): string {
  const id = raw === undefined ? null : parseRequestId(raw);
  if (!id) throw new UsageError(`not a request id: ${raw ?? "(none)"}`);
  return id;
}

async function webhooksCommand(
  command: string | undefined,
  rest: string[],
  values: Record<string, string | boolean | undefined>,
  deps: CliDeps,
): Promise<number> {
  const { webhooks, out } = deps;
  const requestId = requestIdArg(rest[0]);
  const subId = rest[1] ?? "";
  if (command !== "list" && !/^[0-9a-f]{16}$/.test(subId))
    throw new UsageError(`not a subscription id: ${subId || "(none)"}`);
  switch (command) {
    case "list": {
      const subs = await webhooks.list(requestId);
      if (values.json) out(JSON.stringify(subs, null, 2));
      else {
        out(
          ["subscriptionId", "callbackUrl", "createdAt", "since", "next", "pending", "previousSecretValidUntil"].join(
            "\t",
          ),
        );
        for (const s of subs) {
          const until = s.previousSecretValidUntil ? new Date(s.previousSecretValidUntil).toISOString() : "-";
          out([s.id, s.callbackUrl, new Date(s.createdAt).toISOString(), s.since, s.next, s.pending, until].join("\t"));
        }
      }
      return 0;
    }
    case "log": {
      await webhooks.require(requestId, subId);
      const items = await webhooks.deliveries(requestId, subId, Number(values.limit ?? webhooks.logLimit));
      if (values.json) out(JSON.stringify(items, null, 2));
      else {
        out(["at", "eventId", "seq", "kind", "attempt", "outcome", "status", "latencyMs", "error"].join("\t"));
        for (const a of items) out(attemptRow(a));
      }
      return 0;
    }
    case "redeliver": {
      const eventId = rest[2];
      if (!eventId) throw new UsageError("redeliver needs the event id (e.g. 1732841234567-0/3)");
      const r = await webhooks.redeliver(requestId, subId, eventId, (p) => deps.queues.queue(p, WEBHOOK_QUEUE));
      out(`redelivery of ${eventId} (seq ${r.seq}) queued as job ${r.jobId}; its outcome will be in the log`);
      return 0;
    }
    case "rotate": {
      const grace = typeof values.grace === "string" ? Number(values.grace) : deps.rotationGraceSeconds;
      if (!Number.isInteger(grace) || grace < 0)
        throw new UsageError(`not a number of seconds: ${String(values.grace)}`);
      const r = await webhooks.rotate(requestId, subId, grace * 1000);
      out(
        JSON.stringify(
          {
            secret: r.secret,
            previousSecretValidUntil:
              r.previousSecretValidUntil === null ? null : new Date(r.previousSecretValidUntil).toISOString(),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    default:
      throw new UsageError(`unknown command: webhooks ${command ?? ""}`);
  }
}

/** Records a CLI action in the audit log (the CLI has no reason option: reason ""). */
async function record(
  deps: CliDeps,
  action: string,
  target: string,
  ok: boolean,
  extra: { filter?: DeadLetterQuery; count?: number },
): Promise<void> {
  await deps.audit.record({
    actor: deps.actor,
    role: "admin",
    action,
    target,
    reason: "",
    outcome: ok ? "succeeded" : "refused",
    ...extra,
  });
}

/** `audit`: the operator audit log, newest first, filtered by actor, action and target. */
async function auditCommand(
  command: string | undefined,
  values: Record<string, string | boolean | undefined>,
  deps: CliDeps,
): Promise<number> {
  if (command) throw new UsageError(`audit takes options only, not '${command}'`);
  const limit = Number(values.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError("--limit must be 1-500");
  const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const page = await deps.audit.list({
    limit,
    cursor: str("cursor"),
    actor: str("actor"),
    action: str("action"),
    target: str("target"),
  });
  if (values.json) {
    deps.out(JSON.stringify(page, null, 2));
    return 0;
  }
  const rows = [["at", "actor", "role", "action", "target", "outcome", "count", "reason", "detail"]];
  for (const e of page.items) {
    rows.push([
      new Date(e.at).toISOString(),
      e.actor,
      e.role,
      e.action,
      e.target,
      e.outcome,
      e.count === undefined ? "-" : String(e.count),
      e.reason.slice(0, 60) || "-",
      (e.detail ?? "").slice(0, 80),
    ]);
  }
  for (const line of table(rows)) deps.out(line);
  deps.out(page.next ? `more: --cursor ${page.next}` : `${page.items.length} shown, no more`);
  return 0;
}

/** Runs one command line; returns the exit code. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const now = deps.now?.() ?? Date.now();
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const [area, command, ...rest] = positionals;
  if (values.help || !area) {
    deps.out(USAGE);
    return values.help ? 0 : 2;
  }
  const { deadLetters, out } = deps;
  if (area === "partitions") {
    if (command) throw new UsageError(`partitions takes options only, not '${command}'`);
    const map = await partitionMap(deps.store.redis, deps.store.keys);
    if (values.json) {
      out(JSON.stringify(map, null, 2));
      return 0;
    }
    const rows = map.map((m) => [`${m.partition}`, m.tag, `${m.slot}`, m.master]);
    for (const line of table([["partition", "tag", "slot", "master"], ...rows])) out(line);
    const per = new Map<string, number>();
    for (const m of map) per.set(m.master, (per.get(m.master) ?? 0) + 1);
    for (const [master, n] of [...per].sort()) out(`${master}: ${n} partitions`);
    return 0;
  }
  if (area === "request" && command === "show" && rest[0]) {
    const id = parseRequestId(rest[0]);
    const stored = id ? await deps.store.read(id) : null;
    if (!stored) {
      out(`request ${rest[0]} not found`);
      return 1;
    }
    const { handle: _h, closedHandle: _c, ...fields } = stored.fields;
    out(JSON.stringify({ requestId: id, ...fields, history: stored.history }, null, 2));
    return 0;
  }
  if (area === "requests") {
    if (command) throw new UsageError(`requests takes options only, not '${command}'`);
    const query = parseRequestQuery(requestsFilter(values, now), values["order-by"]);
    const limit = Number(values.limit ?? QUERY_LIMIT_DEFAULT);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError("--limit must be 1-500");
    const page = await new RequestIndex(deps.store.redis, deps.store.keys).query(query, {
      limit,
      cursor: values.cursor,
    });
    if (values.json) {
      const items = page.items.map(({ requestId, fields: { handle: _h, closedHandle: _c, ...f } }) => ({
        requestId,
        ...f,
      }));
      out(JSON.stringify({ items, nextCursor: page.nextCursor }, null, 2));
      return 0;
    }
    const rows = [["requestId", "state", "since", "submitted", "jobDefinitionId", "submitter", "errorType", "message"]];
    for (const { requestId, fields: f } of page.items) {
      rows.push([
        requestId,
        f.state ?? "-",
        iso(f.stateChangeTime),
        iso(f.registeredAt),
        f.jobDefinitionId ?? "-",
        f.submitter ?? "-",
        f.errorType ?? "-",
        (f.errorWarningMessage ?? "").slice(0, 60),
      ]);
    }
    for (const line of table(rows)) out(line);
    out(page.nextCursor ? `more: --cursor ${page.nextCursor}` : `${page.items.length} shown, no more`);
    return 0;
  }
  if (area === "webhooks") return webhooksCommand(command, rest, values, deps);
  if (area === "audit") return auditCommand(command, values, deps);
  if (area !== "dlq") throw new UsageError(`unknown command: ${positionals.join(" ")}`);
  const q = filters(values, now);
  switch (command) {
    case "count":
      out(String(await deadLetters.count()));
      return 0;
    case "list": {
      const page = await deadLetters.list(q ?? {}, { limit: Number(values.limit ?? 50), cursor: values.cursor });
      if (values.json) out(JSON.stringify(page, null, 2));
      else {
        out(["id", "deadAt", "requestId", "seq", "status", "reason", "attempts", "error"].join("\t"));
        for (const e of page.items) out(row(e));
        if (page.nextCursor) out(`more: --cursor ${page.nextCursor}`);
      }
      return 0;
    }
    case "show": {
      const e = rest[0] ? await deadLetters.get(rest[0]) : null;
      if (!e) {
        out(`dead letter ${rest[0] ?? "(no id)"} not found`);
        return 1;
      }
      out(JSON.stringify(e, null, 2));
      return 0;
    }
    case "replay": {
      if (rest.length > 0) {
        let missing = 0;
        for (const id of rest) {
          const r = await deadLetters.replay(id);
          if (r === "not-found") missing++;
          out(`${id}\t${r}`);
          await record(deps, "deadLetter.replay", `dead-letter/${id}`, r === "replayed", {});
        }
        return missing > 0 ? 1 : 0;
      }
      if (!values.all && !q) throw new UsageError("replay needs ids, --all, or filters");
      const op = await deadLetters.startReplay(q ?? {}, Number(values.rate ?? deps.defaultRate), deps.queues.ops());
      await record(deps, "deadLetters.replayStart", `replay/${op.id}`, true, { filter: op.filter, count: op.total });
      out(`replay ${op.id} started: ${op.total} dead letters at ${op.rate}/s`);
      if (!values.wait) return 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        const cur = await deadLetters.getReplay(op.id);
        out(`replay ${op.id}: ${cur?.state} ${cur?.replayed}/${cur?.total}`);
        if (cur?.state !== "running") return cur?.state === "done" ? 0 : 1;
      }
    }
    case "replay-status":
    case "replay-cancel": {
      const id = rest[0] ?? "";
      const op = command === "replay-cancel" ? await deadLetters.cancelReplay(id) : await deadLetters.getReplay(id);
      if (!op) {
        out(`replay ${id} not found`);
        return 1;
      }
      out(JSON.stringify(op, null, 2));
      return 0;
    }
    case "purge": {
      let purged = 0;
      if (rest.length > 0) {
        for (const id of rest) if (await deadLetters.remove(id)) purged++;
      } else if (typeof values["older-than"] === "string") {
        purged = await deadLetters.purgeMatching({ to: parseTime(values["older-than"], now) });
      } else if (values.all || q) {
        purged = await deadLetters.purgeMatching(q ?? {});
      } else {
        throw new UsageError("purge needs ids, --all, --older-than, or filters");
      }
      await record(deps, "deadLetters.purge", rest.length > 0 ? "dead-letters/ids" : "dead-letters", true, {
        count: purged,
        ...(q ? { filter: q } : {}),
      });
      out(`purged ${purged}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command: dlq ${command ?? ""}`);
  }
}
