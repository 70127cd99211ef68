/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import type { AuditEntry, AuditQuery } from "@ess/store";
import { FilterText } from "./bulk.js";
import { CONSOLE_PATH, ErrorLine, Pager, Time } from "./layout.js";

/** Entries on one page of the audit log. */
export const AUDIT_PAGE_SIZE = 50;

/** The audit filters as the URL carries them. */
export type AuditFilters = Pick<AuditQuery, "actor" | "action" | "target" | "cursor">;

/** Reads the filters of a query string (exact matches; bounded lengths). */
export function parseAuditFilters(params: URLSearchParams): AuditFilters {
  const out: AuditFilters = {};
  for (const k of ["actor", "action", "target", "cursor"] as const) {
    const v = params.get(k)?.trim();
    if (v) out[k] = v.slice(0, 200);
  }
  return out;
}

function search(f: AuditFilters, cursor?: string): string {
  const p = new URLSearchParams();
  for (const k of ["actor", "action", "target"] as const) if (f[k]) p.set(k, f[k] as string);
  if (cursor) p.set("cursor", cursor);
  const s = p.toString();
  return s === "" ? "" : `?${s}`;
}

/** A target as a link when it names a request or a bulk action. */
function Target(props: { target: string }) {
  const [kind, id] = props.target.split("/", 2);
  if (kind === "request" && id) return <a href={`${CONSOLE_PATH}/requests/${id}`}>{props.target}</a>;
  if (kind === "bulk" && id && id !== "new") return <a href={`${CONSOLE_PATH}/bulk/${id}`}>{props.target}</a>;
  return <span>{props.target}</span>;
}

/** The audit page: filters, one page of entries (newest first), the pager. */
export function AuditView(props: { f: AuditFilters; items?: AuditEntry[]; next?: string | undefined; error?: string }) {
  const { f } = props;
  const field = (name: "actor" | "action" | "target", label: string) => (
    <label class="field" for={`a-${name}`}>
      {label}
      <input id={`a-${name}`} type="text" name={name} value={f[name] ?? ""} />
    </label>
  );
  return (
    <>
      <form class="filters" method="get" action={`${CONSOLE_PATH}/audit`} aria-label="Filter the audit log">
        {field("actor", "Actor")}
        {field("action", "Action (e.g. request.cancel, bulk.*)")}
        {field("target", "Target (e.g. request/123)")}
        <button type="submit">Apply filters</button>
        <a href={`${CONSOLE_PATH}/audit`}>Clear</a>
      </form>
      <ErrorLine error={props.error} />
      {props.items ? (
        <section aria-labelledby="h-audit">
          <h2 id="h-audit">Entries</h2>
          {props.items.length === 0 ? (
            <p>No entry matches.</p>
          ) : (
            <table id="audit-results">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Role</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Filter</th>
                  <th scope="col" class="num">
                    Count
                  </th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {props.items.map((e) => (
                  <tr>
                    <td>
                      <Time ms={e.at} />
                    </td>
                    <td>{e.actor}</td>
                    <td>{e.role}</td>
                    <td>{e.action}</td>
                    <td>
                      <Target target={e.target} />
                    </td>
                    <td>{e.reason}</td>
                    <td>{e.filter ? <FilterText filter={e.filter} /> : ""}</td>
                    <td class="num">{e.count ?? ""}</td>
                    <td>
                      <span
                        class={`badge ${e.outcome === "succeeded" ? "ok" : e.outcome === "refused" ? "warn" : "bad"}`}
                      >
                        {e.outcome}
                      </span>
                      {e.detail ? <span class="muted"> {e.detail}</span> : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager
            first={f.cursor ? { href: `${CONSOLE_PATH}/audit${search(f)}`, label: "Newest" } : undefined}
            next={
              props.next ? { href: `${CONSOLE_PATH}/audit${search(f, props.next)}`, label: "Older entries" } : undefined
            }
            end="End of the log."
          />
        </section>
      ) : null}
    </>
  );
}
