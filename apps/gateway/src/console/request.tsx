/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import type { DeadLetter, DeadLetters, DeliveryAttempt, RequestStore, StoredRequest, WebhookStore } from "@ess/store";
import { CONSOLE_PATH, type Notice, NoticeLine, StateBadge, Time } from "./layout.js";

/** Webhook attempts read per subscription for the timeline. */
const DELIVERIES_PER_SUBSCRIPTION = 50;
/** Dead letters of one request shown at most. */
const DEAD_LETTERS_SHOWN = 100;

/** One line of a request's timeline, whatever it came from. */
export interface TimelineItem {
  at: number | undefined;
  kind: "transition" | "callback" | "operator" | "webhook" | "dead-letter";
  /** applied, late, ignored, skipped, registered, cancelRequested, … or the delivery outcome */
  outcome: string;
  text: string;
  actor?: string;
  reason?: string;
}

/** What the detail page shows of a request. */
export interface RequestDetail {
  requestId: string;
  partition: number;
  stored: StoredRequest;
  deadLetters: DeadLetter[];
  timeline: TimelineItem[];
}

const str = (v: unknown) => (typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined);

/** A history entry as a timeline line: callbacks with their outcome, transitions, operator actions. */
export function historyItem(h: Record<string, unknown>): TimelineItem {
  const outcome = str(h.outcome) ?? "changed";
  const from = str(h.from);
  const to = str(h.to);
  const move = from && to && from !== to ? `${from} → ${to}` : (to ?? from ?? "");
  const actor = str(h.actor);
  const operatorAction = str(h.action);
  const parts: string[] = [];
  let kind: TimelineItem["kind"] = "transition";
  if (actor !== undefined || operatorAction !== undefined) {
    kind = "operator";
    parts.push(`${operatorAction ?? outcome}${move ? `: ${move}` : ""}`);
  } else if (h.seq !== undefined || h.status !== undefined) {
    kind = "callback";
    parts.push(`callback ${str(h.status) ?? ""} #${str(h.seq) ?? "?"} ${outcome}${move ? `: ${move}` : ""}`);
  } else {
    parts.push(`${outcome}${move ? `: ${move}` : ""}`);
  }
  const detail = str(h.message) ?? (kind === "operator" ? undefined : str(h.reason));
  if (detail) parts.push(`(${detail})`);
  const item: TimelineItem = {
    at: typeof h.appliedAt === "number" ? h.appliedAt : typeof h.at === "number" ? h.at : undefined,
    kind,
    outcome,
    text: parts.join(" "),
  };
  if (actor !== undefined) item.actor = actor;
  if (kind === "operator" && str(h.reason)) item.reason = str(h.reason) as string;
  return item;
}

function deliveryItem(url: string, d: DeliveryAttempt): TimelineItem {
  const status = d.status === null ? "no answer" : `HTTP ${d.status}`;
  return {
    at: d.at,
    kind: "webhook",
    outcome: d.outcome,
    text: `webhook ${d.type} #${d.seq} to ${url}: ${d.outcome} (${status}${d.error ? `, ${d.error}` : ""}; attempt ${d.attempt}${d.kind === "redelivery" ? ", redelivery" : ""})`,
  };
}

function deadLetterItem(d: DeadLetter): TimelineItem {
  return {
    at: d.deadAt,
    kind: "dead-letter",
    outcome: d.reason,
    text: `dead letter ${d.id}: ${d.status ?? d.name} #${d.seq ?? "?"} ${d.reason} after ${d.attempts} attempts (${d.error})`,
  };
}

/**
 * Reads a request and everything its timeline shows: its history (transitions, callbacks with their
 * outcome, operator actions), its webhook deliveries and its dead letters, newest first.
 */
export async function loadRequestDetail(
  deps: { store: RequestStore; deadLetters: DeadLetters; webhooks?: WebhookStore | undefined },
  requestId: string,
): Promise<RequestDetail | null> {
  const { store, deadLetters, webhooks } = deps;
  const stored = await store.read(requestId);
  if (!stored) return null;
  const [dead, deliveries] = await Promise.all([
    deadLetters.list({ requestId }, { limit: DEAD_LETTERS_SHOWN }),
    (async () => {
      if (!webhooks) return [];
      const subs = await webhooks.list(requestId);
      const logs = await Promise.all(
        subs.map(async (s) =>
          (await webhooks.deliveries(requestId, s.id, DELIVERIES_PER_SUBSCRIPTION)).map((d) =>
            deliveryItem(s.callbackUrl, d),
          ),
        ),
      );
      return logs.flat();
    })(),
  ]);
  const timeline = [...stored.history.map(historyItem), ...deliveries, ...dead.items.map(deadLetterItem)].sort(
    (a, b) => (b.at ?? 0) - (a.at ?? 0),
  );
  return { requestId, partition: store.keys.partition(requestId), stored, deadLetters: dead.items, timeline };
}

/** One action the viewer may take now, as the service layer lists it. */
export interface OfferedAction {
  action: string;
  label: string;
  description: string;
}

const FACTS: [string, string][] = [
  ["jobDefinitionId", "Job definition"],
  ["application", "Application"],
  ["submitter", "Submitter"],
  ["execution", "Execution"],
  ["errorType", "Error type"],
  ["isTimedOut", "Timed out"],
];

/** An action form: the reason is required (the server checks it too), the CSRF token rides along. */
export function ReasonForm(props: {
  action: string;
  label: string;
  description: string;
  csrf: string;
  danger?: boolean;
  id: string;
}) {
  const field = `reason-${props.id}`;
  return (
    <form method="post" action={props.action}>
      <input type="hidden" name="_csrf" value={props.csrf} />
      <strong>{props.label}</strong>
      <span class="muted">{props.description}</span>
      <label class="field" for={field}>
        Reason (required, recorded in the audit log)
        <textarea id={field} name="reason" required minlength={3} maxlength={500} rows={2}></textarea>
      </label>
      <button type="submit" class={props.danger ? "danger" : undefined}>
        {props.label}
      </button>
    </form>
  );
}

/** The request page: facts, the actions valid now (none for a viewer), the timeline. */
export function RequestView(props: {
  d: RequestDetail;
  actions: OfferedAction[];
  canAct: boolean;
  csrf: string;
  notice?: Notice | undefined;
  /** CANCELLING without forceCancel yet: when the quiet period ends (ms) */
  forceCancelFrom?: number | undefined;
}) {
  const { d } = props;
  const f = d.stored.fields;
  return (
    <>
      <NoticeLine notice={props.notice} />
      <section aria-labelledby="h-facts">
        <h2 id="h-facts">Request</h2>
        <dl class="facts">
          <dt>State</dt>
          <dd>
            <StateBadge state={f.state} /> since <Time ms={f.stateChangeTime} />
          </dd>
          <dt>Partition</dt>
          <dd>{d.partition}</dd>
          <dt>Submitted</dt>
          <dd>
            <Time ms={f.registeredAt} />
          </dd>
          {FACTS.filter(([k]) => f[k] !== undefined).map(([k, label]) => (
            <>
              <dt>{label}</dt>
              <dd>{f[k]}</dd>
            </>
          ))}
          <dt>Dead letters</dt>
          <dd>{d.deadLetters.length}</dd>
        </dl>
      </section>
      <section aria-labelledby="h-actions">
        <h2 id="h-actions">Actions</h2>
        {!props.canAct ? (
          <p class="muted">Your role can read but not act.</p>
        ) : props.actions.length === 0 ? (
          <p class="muted">No action is valid in this state.</p>
        ) : null}
        {props.canAct && props.forceCancelFrom !== undefined ? (
          <p class="muted" id="force-cancel-from">
            Force cancel is offered once the job has been quiet long enough: from <Time ms={props.forceCancelFrom} />{" "}
            (reload then).
          </p>
        ) : null}
        {!props.canAct || props.actions.length === 0 ? null : (
          <div class="actions">
            {props.actions.map((a) => (
              <ReasonForm
                id={a.action}
                action={`${CONSOLE_PATH}/requests/${d.requestId}/actions/${a.action}`}
                label={a.label}
                description={a.description}
                csrf={props.csrf}
                danger={a.action === "forceCancel"}
              />
            ))}
          </div>
        )}
      </section>
      <section aria-labelledby="h-timeline">
        <h2 id="h-timeline">Timeline</h2>
        {d.timeline.length === 0 ? (
          <p class="muted">No history kept.</p>
        ) : (
          <ol class="timeline" id="timeline">
            {d.timeline.map((t) => (
              <li data-kind={t.kind} data-outcome={t.outcome}>
                <span class="when">
                  <Time ms={t.at} />
                </span>
                <span class="badge muted">{t.kind}</span> {t.text}
                {t.actor ? (
                  <>
                    {" "}
                    by <strong>{t.actor}</strong>
                  </>
                ) : null}
                {t.reason ? <span class="muted"> — “{t.reason}”</span> : null}
              </li>
            ))}
          </ol>
        )}
      </section>
    </>
  );
}
