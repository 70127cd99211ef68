/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { STATE_NAMES } from "@ess/domain";
import { CONSOLE_PATH, StateBadge, Time } from "./layout.js";
import type { OverviewSnapshot } from "./snapshot.js";

const fmt = (n: number) => n.toLocaleString("en-US");

/** Requests per state, linking each to its filtered list; states with none are left out. */
function StateTable(props: { states: OverviewSnapshot["states"] }) {
  const rows = STATE_NAMES.filter((s) => props.states[s] > 0);
  if (rows.length === 0) return <p class="muted">No requests are registered.</p>;
  return (
    <table>
      <caption class="sr-only">Requests per state</caption>
      <thead>
        <tr>
          <th scope="col">State</th>
          <th scope="col" class="num">
            Requests
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map((s) => (
          <tr>
            <td>
              <a href={`${CONSOLE_PATH}/requests?state=${s}`}>
                <StateBadge state={s} />
              </a>
            </td>
            <td class="num" data-state={s}>
              {fmt(props.states[s])}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * The overview's live part: polled by htmx every few seconds (the snapshot behind it is read from
 * Redis at most once per interval, whoever polls). The outer element replaces itself.
 */
export function OverviewLive(props: { snap: OverviewSnapshot; pollSeconds: number }) {
  const { snap } = props;
  const needs = snap.states.ERROR_MANUAL_RECOVERY + snap.states.PAUSED;
  const delta = snap.deadLetterDelta;
  return (
    <div
      id="overview-live"
      hx-get={`${CONSOLE_PATH}/overview/live`}
      hx-trigger={`every ${props.pollSeconds}s`}
      hx-swap="outerHTML"
    >
      <p class="muted">
        As of <Time ms={snap.at} />; refreshed every {props.pollSeconds} s.
        {snap.error ? <span class="error"> Redis could not be read: {snap.error} (older numbers shown)</span> : null}
      </p>
      <section aria-labelledby="h-attention">
        <h2 id="h-attention">At a glance</h2>
        <div class="cards">
          {snap.readiness ? (
            <div class="card">
              <div class={snap.readiness.ready ? "v good" : "v error"} id="readiness">
                {snap.readiness.ready ? "ready" : "not ready"}
              </div>
              <div class="l">
                this gateway (
                {Object.entries(snap.readiness.checks)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join(", ")}
                )
              </div>
            </div>
          ) : null}
          <div class="card">
            <div class="v" id="needs-action">
              {fmt(needs)}
            </div>
            <div class="l">
              <a href={`${CONSOLE_PATH}/requests?preset=needs-action`}>need action</a> (manual recovery, paused)
            </div>
          </div>
          <div class="card">
            <div class="v" id="dead-letter-count">
              {fmt(snap.deadLetters)}
            </div>
            <div class="l">
              <a href={`${CONSOLE_PATH}/dead-letters`}>dead letters</a>; {fmt(snap.deadLettersLastHour)} in the last
              hour, {delta > 0 ? `+${fmt(delta)}` : fmt(delta)} since the last refresh
            </div>
          </div>
          <div class="card">
            <div class="v">{fmt(snap.totals.backlog)}</div>
            <div class="l">
              callbacks waiting{snap.backlogLimit > 0 ? ` (limit ${fmt(snap.backlogLimit)} per partition)` : ""}
            </div>
          </div>
          <div class="card">
            <div class="v">{fmt(snap.totals.lagSeconds)} s</div>
            <div class="l">lag: the oldest waiting callback</div>
          </div>
          <div class="card">
            <div class="v" id="webhook-failures">
              {fmt(snap.totals.webhookRetrying + snap.totals.webhookFailed)}
            </div>
            <div class="l">
              webhook deliveries failing: {fmt(snap.totals.webhookRetrying)} retrying after a failed attempt,{" "}
              {fmt(snap.totals.webhookFailed)} failed; {fmt(snap.totals.webhookBacklog)} waiting their turn
            </div>
          </div>
          <div class="card">
            <div class="v">{fmt(snap.states.ERROR_AUTO_RETRY)}</div>
            <div class="l">
              <a href={`${CONSOLE_PATH}/requests?preset=auto-retrying`}>auto-retrying</a>
            </div>
          </div>
        </div>
      </section>
      <section aria-labelledby="h-partitions">
        <h2 id="h-partitions">Partitions</h2>
        <ul class="strip">
          {snap.partitions.map((p) => (
            <li
              class={p.health === "ok" ? "ok" : p.health === "lagging" ? "warn" : "bad"}
              title={`backlog ${p.backlog}, active ${p.active}, failed ${p.failed}, lag ${p.lagSeconds} s, webhooks waiting ${p.webhookBacklog}, retrying ${p.webhookRetrying}, failed ${p.webhookFailed}`}
            >
              <a href={`${CONSOLE_PATH}/requests?partition=${p.partition}`}>p{p.partition}</a>: {p.health}
              <br />
              {fmt(p.backlog)} waiting · {fmt(p.lagSeconds)} s
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="h-states">
        <h2 id="h-states">Requests per state</h2>
        <StateTable states={snap.states} />
      </section>
    </div>
  );
}
