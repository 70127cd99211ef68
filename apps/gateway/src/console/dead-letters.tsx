/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { EssError, parseRequestId } from "@ess/domain";
import { DEAD_LETTER_REASONS, type DeadLetter, type DeadLetterQuery, type DeadLetterReason } from "@ess/store";
import { CONSOLE_PATH, ErrorLine, type Notice, NoticeLine, Pager, PartitionSelect, Time } from "./layout.js";
import { ReasonForm } from "./request.js";

/** Dead letters on one page of the console's list. */
export const DEAD_LETTERS_PAGE_SIZE = 50;

/** The dead-letter filters as the URL carries them. */
export interface DeadLetterFilters {
  partition?: number;
  requestId?: string;
  status?: string;
  reason?: DeadLetterReason;
  /** `YYYY-MM-DDTHH:MM`, UTC: dead-lettered from / until */
  from?: string;
  to?: string;
  cursor?: string;
}

const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;
const bad = (detail: string): never => {
  throw new EssError("INVALID_BODY", detail);
};

/** Reads the filters of a query string or a form; a malformed value is a 400 naming it. */
export function parseDeadLetterFilters(
  get: (name: string) => string | undefined,
  partitions: number,
): DeadLetterFilters {
  const out: DeadLetterFilters = {};
  const text = (name: string) => {
    const v = get(name)?.trim();
    if (v === undefined || v === "") return undefined;
    if (v.length > 400) bad(`${name}: at most 400 characters`);
    return v;
  };
  const p = text("partition");
  if (p !== undefined) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n >= partitions) bad(`partition: one of 0-${partitions - 1}`);
    out.partition = n;
  }
  const id = text("requestId");
  if (id !== undefined) out.requestId = parseRequestId(id) ?? bad("requestId: a request id is a positive integer");
  const status = text("status");
  if (status !== undefined) out.status = status.slice(0, 40);
  const reason = text("reason");
  if (reason !== undefined) {
    if (!(DEAD_LETTER_REASONS as readonly string[]).includes(reason))
      bad(`reason: one of ${DEAD_LETTER_REASONS.join(", ")}`);
    out.reason = reason as DeadLetterReason;
  }
  for (const k of ["from", "to"] as const) {
    const v = text(k);
    if (v === undefined) continue;
    if (!LOCAL_TIME.test(v)) bad(`${k}: a UTC time as YYYY-MM-DDTHH:MM`);
    out[k] = v;
  }
  const cursor = text("cursor");
  if (cursor !== undefined) out.cursor = cursor;
  return out;
}

/** The store's query of these filters (times as ms). */
export function toDeadLetterQuery(f: DeadLetterFilters): DeadLetterQuery {
  return {
    partition: f.partition,
    requestId: f.requestId,
    status: f.status,
    reason: f.reason,
    from: f.from === undefined ? undefined : Date.parse(`${f.from}Z`),
    to: f.to === undefined ? undefined : Date.parse(`${f.to}Z`),
  };
}

function search(f: DeadLetterFilters, cursor?: string): string {
  const p = new URLSearchParams();
  for (const k of ["partition", "requestId", "status", "reason", "from", "to"] as const) {
    if (f[k] !== undefined) p.set(k, String(f[k]));
  }
  if (cursor) p.set("cursor", cursor);
  const s = p.toString();
  return s === "" ? "" : `?${s}`;
}

/** The filter inputs, shared by the GET filter form and the bulk form (which the server snapshots). */
function FilterFields(props: { f: DeadLetterFilters; partitions: number; prefix: string }) {
  const { f, prefix } = props;
  const id = (n: string) => `${prefix}-${n}`;
  return (
    <>
      <PartitionSelect id={id("partition")} partitions={props.partitions} selected={f.partition} />
      <label class="field" for={id("requestId")}>
        Request id
        <input id={id("requestId")} type="text" name="requestId" value={f.requestId ?? ""} />
      </label>
      <label class="field" for={id("status")}>
        Callback status
        <input id={id("status")} type="text" name="status" value={f.status ?? ""} />
      </label>
      <label class="field" for={id("reason")}>
        Reason
        <select id={id("reason")} name="reason">
          <option value="">any</option>
          {DEAD_LETTER_REASONS.map((r) => (
            <option value={r} selected={f.reason === r}>
              {r}
            </option>
          ))}
        </select>
      </label>
      <label class="field" for={id("from")}>
        Dead from (UTC)
        <input id={id("from")} type="datetime-local" name="from" value={f.from ?? ""} />
      </label>
      <label class="field" for={id("to")}>
        Dead until (UTC)
        <input id={id("to")} type="datetime-local" name="to" value={f.to ?? ""} />
      </label>
    </>
  );
}

/** The dead-letter page: filter, one page of entries with replay/purge each, and the bulk start. */
export function DeadLettersView(props: {
  f: DeadLetterFilters;
  partitions: number;
  items?: DeadLetter[];
  nextCursor?: string | null;
  matching?: number;
  error?: string | undefined;
  notice?: Notice | undefined;
  canReplay: boolean;
  canPurge: boolean;
  canBulk: boolean;
  csrf: string;
}) {
  const { f } = props;
  return (
    <>
      <NoticeLine notice={props.notice} />
      <form class="filters" method="get" action={`${CONSOLE_PATH}/dead-letters`} aria-label="Filter dead letters">
        <FilterFields f={f} partitions={props.partitions} prefix="f" />
        <button type="submit">Apply filters</button>
        <a href={`${CONSOLE_PATH}/dead-letters`}>Clear</a>
      </form>
      <ErrorLine error={props.error} />
      <p>
        <a href={`${CONSOLE_PATH}/bulk`}>Recent bulk actions</a>
      </p>
      {props.canBulk && props.items ? (
        <section aria-labelledby="h-bulk">
          <h2 id="h-bulk">Bulk action on this filter</h2>
          <p>
            <span id="matching-count">{props.matching ?? 0}</span> dead letters match. The server keeps the filter as it
            is now; the next step shows its count, which you confirm by typing it.
          </p>
          <form method="post" action={`${CONSOLE_PATH}/bulk/new`} class="filters" aria-label="Start a bulk action">
            <input type="hidden" name="_csrf" value={props.csrf} />
            {(["partition", "requestId", "status", "reason", "from", "to"] as const).map((k) =>
              f[k] === undefined ? null : <input type="hidden" name={k} value={String(f[k])} />,
            )}
            <button type="submit" name="action" value="replay">
              Replay all matching…
            </button>
            {props.canPurge ? (
              <button type="submit" name="action" value="purge" class="danger">
                Purge all matching…
              </button>
            ) : null}
          </form>
        </section>
      ) : null}
      {props.items ? (
        <section aria-labelledby="h-dl">
          <h2 id="h-dl">Dead letters</h2>
          {props.items.length === 0 ? (
            <p>No dead letter matches.</p>
          ) : (
            <table id="dead-letter-results">
              <thead>
                <tr>
                  <th scope="col">Dead letter</th>
                  <th scope="col">Request</th>
                  <th scope="col">Status</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Error</th>
                  <th scope="col">Dead since</th>
                  {props.canReplay || props.canPurge ? <th scope="col">Actions</th> : null}
                </tr>
              </thead>
              <tbody>
                {props.items.map((d) => (
                  <tr>
                    <td>{d.id}</td>
                    <td>{d.requestId ? <a href={`${CONSOLE_PATH}/requests/${d.requestId}`}>{d.requestId}</a> : "—"}</td>
                    <td>
                      {d.status ?? d.name} {d.seq !== null ? `#${d.seq}` : ""}
                    </td>
                    <td>{d.reason}</td>
                    <td>{d.error}</td>
                    <td>
                      <Time ms={d.deadAt} />
                    </td>
                    {props.canReplay || props.canPurge ? (
                      <td>
                        <details>
                          <summary>Act on {d.id}</summary>
                          {props.canReplay ? (
                            <ReasonForm
                              id={`replay-${d.id}`}
                              action={`${CONSOLE_PATH}/dead-letters/${encodeURIComponent(d.id)}/replay`}
                              label="Replay"
                              description="Put the job back on its queue."
                              csrf={props.csrf}
                            />
                          ) : null}
                          {props.canPurge ? (
                            <ReasonForm
                              id={`purge-${d.id}`}
                              action={`${CONSOLE_PATH}/dead-letters/${encodeURIComponent(d.id)}/purge`}
                              label="Purge"
                              description="Remove it for good."
                              csrf={props.csrf}
                              danger
                            />
                          ) : null}
                        </details>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager
            first={f.cursor ? { href: `${CONSOLE_PATH}/dead-letters${search(f)}`, label: "First page" } : undefined}
            next={
              props.nextCursor
                ? { href: `${CONSOLE_PATH}/dead-letters${search(f, props.nextCursor)}`, label: "Next page" }
                : undefined
            }
            end="End of the list."
          />
        </section>
      ) : null}
    </>
  );
}
