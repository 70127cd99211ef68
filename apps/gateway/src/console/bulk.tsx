/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { type BulkAction, type DeadLetterFilter, isBulkFinished } from "@ess/store";
import { CONSOLE_PATH, ErrorLine, Time } from "./layout.js";

/** Seconds between two polls of a running bulk action's progress. */
export const PROGRESS_POLL_SECONDS = 1;

/** A snapshotted filter in words (what the server kept, never what a client sends again). */
export function FilterText(props: { filter: DeadLetterFilter }) {
  const f = props.filter;
  const parts: string[] = [];
  if (f.partition !== undefined) parts.push(`partition ${f.partition}`);
  if (f.requestId !== undefined) parts.push(`request ${f.requestId}`);
  if (f.status !== undefined) parts.push(`status ${f.status}`);
  if (f.reason !== undefined) parts.push(`reason ${f.reason}`);
  if (f.from !== undefined) parts.push(`dead from ${new Date(f.from).toISOString()}`);
  if (f.to !== undefined) parts.push(`dead until ${new Date(f.to).toISOString()}`);
  return <span>{parts.length === 0 ? "every dead letter" : parts.join(", ")}</span>;
}

const kindLabel = (a: BulkAction) => (a.kind === "replay" ? "Replay" : "Purge");

/** Step 2: the estimate, and the confirmation form: only the typed count and the reason go back. */
export function ConfirmStep(props: { a: BulkAction; csrf: string; error?: string | undefined }) {
  const { a } = props;
  return (
    <section aria-labelledby="h-confirm">
      <h2 id="h-confirm">Step 2 of 4: confirm</h2>
      <p>
        {kindLabel(a)} the dead letters matching <FilterText filter={a.filter} />, as the server recorded that filter at{" "}
        <Time ms={a.createdAt} />.
      </p>
      <p>
        The server counted <strong id="bulk-estimate">{a.estimate}</strong> dead letters. Type that number to confirm.
      </p>
      <ErrorLine error={props.error} />
      <form method="post" action={`${CONSOLE_PATH}/bulk/${a.id}/confirm`} class="stack">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <label class="field" for="bulk-count">
          Number of dead letters
          <input id="bulk-count" type="text" inputmode="numeric" name="count" required autocomplete="off" />
        </label>
        <label class="field" for="bulk-reason">
          Reason (required, recorded in the audit log)
          <textarea id="bulk-reason" name="reason" required minlength={3} maxlength={500} rows={2}></textarea>
        </label>
        <button type="submit" class={a.kind === "purge" ? "danger" : undefined}>
          {kindLabel(a)} {a.estimate} dead letters
        </button>
      </form>
      <p>Or discard it (nothing has been replayed or purged):</p>
      <AbortForm a={a} csrf={props.csrf} label="Discard this action" />
    </section>
  );
}

function AbortForm(props: { a: BulkAction; csrf: string; label: string }) {
  return (
    <form method="post" action={`${CONSOLE_PATH}/bulk/${props.a.id}/abort`} class="stack">
      <input type="hidden" name="_csrf" value={props.csrf} />
      <label class="field" for="abort-reason">
        Reason to stop (required)
        <input id="abort-reason" type="text" name="reason" required minlength={3} maxlength={500} />
      </label>
      <button type="submit" class="secondary">
        {props.label}
      </button>
    </form>
  );
}

/** Steps 3 and 4: progress while it runs (polled by htmx, with an abort button), then the results. */
export function BulkProgress(props: { a: BulkAction; csrf: string; canAct: boolean }) {
  const { a } = props;
  const finished = isBulkFinished(a.state);
  const total = Math.max(a.estimate, a.processed);
  return (
    <section
      id="bulk-progress"
      aria-labelledby="h-progress"
      {...(finished
        ? {}
        : {
            "hx-get": `${CONSOLE_PATH}/bulk/${a.id}/progress`,
            "hx-trigger": `every ${PROGRESS_POLL_SECONDS}s`,
            "hx-swap": "outerHTML",
          })}
    >
      <h2 id="h-progress">{finished ? "Step 4 of 4: results" : "Step 3 of 4: running"}</h2>
      <p>
        {kindLabel(a)} of <FilterText filter={a.filter} />: <strong id="bulk-state">{a.state}</strong>
        {a.error ? <span class="error"> ({a.error})</span> : null}
      </p>
      <p>
        <label for="bulk-bar">Progress</label>{" "}
        <progress id="bulk-bar" max={String(total || 1)} value={String(a.processed)}>
          {a.processed} of {total}
        </progress>{" "}
        <span id="bulk-processed">{a.processed}</span> of {total} processed
        {finished ? null : (
          <>
            {" "}
            (updated every {PROGRESS_POLL_SECONDS} s; <a href={`${CONSOLE_PATH}/bulk/${a.id}`}>reload</a>)
          </>
        )}
      </p>
      <table>
        <caption class="sr-only">Results so far</caption>
        <tbody>
          <tr>
            <th scope="row">Succeeded</th>
            <td class="num" id="bulk-succeeded">
              {a.succeeded}
            </td>
          </tr>
          <tr>
            <th scope="row">Gone or failed</th>
            <td class="num" id="bulk-failed">
              {a.failed}
            </td>
          </tr>
          {Object.entries(a.results).map(([label, n]) => (
            <tr>
              <th scope="row">{label}</th>
              <td class="num">{n}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <dl class="facts">
        <dt>Created by</dt>
        <dd>
          {a.createdBy} at <Time ms={a.createdAt} />
        </dd>
        {a.actor ? (
          <>
            <dt>Confirmed by</dt>
            <dd>
              {a.actor} at <Time ms={a.startedAt} />: “{a.reason ?? ""}”
            </dd>
          </>
        ) : null}
        {a.abortedBy ? (
          <>
            <dt>Aborted by</dt>
            <dd>
              {a.abortedBy}: “{a.abortReason ?? ""}”
            </dd>
          </>
        ) : null}
        {a.finishedAt ? (
          <>
            <dt>Finished</dt>
            <dd>
              <Time ms={a.finishedAt} />
            </dd>
          </>
        ) : null}
      </dl>
      {finished ? (
        <p>
          <a href={`${CONSOLE_PATH}/dead-letters`}>Dead letters</a> ·{" "}
          <a href={`${CONSOLE_PATH}/bulk`}>Recent bulk actions</a> ·{" "}
          <a href={`${CONSOLE_PATH}/audit?target=bulk/${a.id}`}>This action in the audit log</a>
        </p>
      ) : null}
      {!finished && props.canAct && a.state === "running" ? <AbortForm a={a} csrf={props.csrf} label="Abort" /> : null}
    </section>
  );
}

/** The bulk page by the action's stage. */
export function BulkView(props: { a: BulkAction; csrf: string; canAct: boolean; error?: string | undefined }) {
  const { a } = props;
  if (a.state === "estimated") {
    return props.canAct ? (
      <ConfirmStep a={a} csrf={props.csrf} error={props.error} />
    ) : (
      <p>
        Waiting for an admin to confirm: {a.estimate} dead letters matching <FilterText filter={a.filter} />.
      </p>
    );
  }
  return (
    <>
      <ErrorLine error={props.error} />
      <BulkProgress a={a} csrf={props.csrf} canAct={props.canAct} />
    </>
  );
}

/** The recent bulk actions. */
export function BulkList(props: { items: BulkAction[] }) {
  if (props.items.length === 0) return <p>No bulk action yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Action</th>
          <th scope="col">Filter</th>
          <th scope="col">State</th>
          <th scope="col" class="num">
            Processed
          </th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((a) => (
          <tr>
            <td>
              <a href={`${CONSOLE_PATH}/bulk/${a.id}`}>
                {kindLabel(a)} {a.id}
              </a>
            </td>
            <td>
              <FilterText filter={a.filter} />
            </td>
            <td>{a.state}</td>
            <td class="num">
              {a.processed} / {a.estimate}
            </td>
            <td>
              {a.createdBy}, <Time ms={a.createdAt} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
