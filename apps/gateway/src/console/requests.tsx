/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { STATE_NAMES } from "@ess/domain";
import { type DeadLetters, type IndexedRequest, RequestIndex, type RequestStore } from "@ess/store";
import {
  filtersToSearch,
  PRESETS,
  type Preset,
  type RequestFilters,
  STUCK_MINUTES_DEFAULT,
  toRequestQuery,
} from "./filters.js";
import { CONSOLE_PATH, ErrorLine, Pager, PartitionSelect, StateBadge, Time } from "./layout.js";

/** Requests on one page of the console's list. */
export const REQUESTS_PAGE_SIZE = 50;

/** One page of the list: its rows, the cursor of the next page, and what was asked (for the page). */
export interface RequestsPage {
  rows: IndexedRequest[];
  nextCursor: string | null;
  /** the `q` the filters amount to, shown so the view can be repeated against the API */
  q: string;
}

/**
 * Runs the filters: through the request index as GET /requests does (the same parser, the same
 * store query, its cursor), or for "with dead letters" through the dead-letter listing (its cursor),
 * or for an id one read. The console never scans Redis itself.
 */
export async function loadRequests(
  deps: { store: RequestStore; deadLetters: DeadLetters },
  f: RequestFilters,
  now: number,
): Promise<RequestsPage> {
  const { store, deadLetters } = deps;
  const { q, query } = toRequestQuery(f, now);
  if (f.id !== undefined) {
    const stored = await store.read(f.id);
    const p = store.keys.partition(f.id);
    const ok = stored && (f.partition === undefined || f.partition === p);
    return { rows: ok ? [{ requestId: f.id, fields: stored.fields }] : [], nextCursor: null, q };
  }
  if (f.preset === "dead-letters") {
    const page = await deadLetters.list({ partition: f.partition }, { limit: REQUESTS_PAGE_SIZE, cursor: f.cursor });
    const ids = [...new Set(page.items.map((d) => d.requestId).filter((id): id is string => id !== null))];
    const reads = await Promise.all(ids.map((id) => store.read(id)));
    const rows: IndexedRequest[] = [];
    ids.forEach((id, i) => {
      const r = reads[i];
      if (r) rows.push({ requestId: id, fields: r.fields });
    });
    return { rows, nextCursor: page.nextCursor, q: "" };
  }
  const page = await new RequestIndex(store.redis, store.keys).query(query, {
    limit: REQUESTS_PAGE_SIZE,
    cursor: f.cursor,
    partitions: f.partition === undefined ? undefined : [f.partition],
  });
  return { rows: page.items, nextCursor: page.nextCursor, q };
}

function TextField(props: { name: string; label: string; value: string | undefined; type?: string }) {
  const id = `f-${props.name}`;
  return (
    <label class="field" for={id}>
      {props.label}
      <input id={id} type={props.type ?? "text"} name={props.name} value={props.value ?? ""} />
    </label>
  );
}

/** The filter form: a GET form, so the filters land in the URL. */
function FilterForm(props: { f: RequestFilters; partitions: number }) {
  const { f } = props;
  return (
    <form class="filters" method="get" action={`${CONSOLE_PATH}/requests`} aria-label="Filter requests">
      <fieldset>
        <legend>States</legend>
        {STATE_NAMES.map((s) => (
          <label>
            <input type="checkbox" name="state" value={s} checked={f.states.includes(s)} /> {s}
          </label>
        ))}
      </fieldset>
      <TextField name="id" label="Request id" value={f.id} />
      <TextField name="jobDefinitionId" label="Job definition" value={f.jobDefinitionId} />
      <TextField name="application" label="Application" value={f.application} />
      <TextField name="submitter" label="Submitter" value={f.submitter} />
      <TextField name="from" label="Submitted from (UTC)" value={f.from} type="datetime-local" />
      <TextField name="to" label="Submitted until (UTC)" value={f.to} type="datetime-local" />
      <PartitionSelect id="f-partition" partitions={props.partitions} selected={f.partition} />
      {f.preset ? <input type="hidden" name="preset" value={f.preset} /> : null}
      {f.preset === "stuck-cancelling" ? (
        <TextField
          name="minutes"
          label="In CANCELLING for at least (minutes)"
          value={String(f.minutes ?? STUCK_MINUTES_DEFAULT)}
          type="number"
        />
      ) : null}
      <button type="submit">Apply filters</button>
      <a href={`${CONSOLE_PATH}/requests`}>Clear</a>
    </form>
  );
}

function Presets(props: { current: Preset | undefined }) {
  return (
    <nav aria-label="Presets">
      <ul class="presets">
        {(Object.keys(PRESETS) as Preset[]).map((k) => (
          <li>
            <a href={`${CONSOLE_PATH}/requests?preset=${k}`} aria-current={props.current === k ? "true" : undefined}>
              {PRESETS[k].label}
              {k === "stuck-cancelling" ? ` over ${STUCK_MINUTES_DEFAULT} min` : ""}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

/** The requests page: presets, the filter form, one page of results and the pager. */
export function RequestsView(props: {
  f: RequestFilters;
  partitions: number;
  page?: RequestsPage;
  error?: string;
  partitionOf: (id: string) => number;
}) {
  const { f, page } = props;
  return (
    <>
      <Presets current={f.preset} />
      <FilterForm f={f} partitions={props.partitions} />
      <ErrorLine error={props.error} />
      {page ? (
        <section aria-labelledby="h-results">
          <h2 id="h-results">
            Results <span class="muted">({page.rows.length} on this page)</span>
          </h2>
          {page.q ? (
            <p class="muted">
              The API's filter: <code>q={page.q}</code>
            </p>
          ) : null}
          {page.rows.length === 0 ? (
            <p>No request matches.</p>
          ) : (
            <table id="request-results">
              <thead>
                <tr>
                  <th scope="col">Request</th>
                  <th scope="col">State</th>
                  <th scope="col">Job definition</th>
                  <th scope="col">Application</th>
                  <th scope="col">Submitter</th>
                  <th scope="col">Submitted</th>
                  <th scope="col">State since</th>
                  <th scope="col" class="num">
                    Partition
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.rows.map((r) => (
                  <tr>
                    <td>
                      <a href={`${CONSOLE_PATH}/requests/${r.requestId}`}>{r.requestId}</a>
                    </td>
                    <td>
                      <StateBadge state={r.fields.state} />
                      {r.fields.isTimedOut === "true" ? <span class="badge bad">timed out</span> : null}
                    </td>
                    <td>{r.fields.jobDefinitionId ?? ""}</td>
                    <td>{r.fields.application ?? ""}</td>
                    <td>{r.fields.submitter ?? ""}</td>
                    <td>
                      <Time ms={r.fields.registeredAt} />
                    </td>
                    <td>
                      <Time ms={r.fields.stateChangeTime} />
                    </td>
                    <td class="num">{props.partitionOf(r.requestId)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager
            first={
              f.cursor ? { href: `${CONSOLE_PATH}/requests${filtersToSearch(f)}`, label: "First page" } : undefined
            }
            next={
              page.nextCursor
                ? { href: `${CONSOLE_PATH}/requests${filtersToSearch(f, page.nextCursor)}`, label: "Next page" }
                : undefined
            }
            end="End of the results."
          />
        </section>
      ) : null}
    </>
  );
}
