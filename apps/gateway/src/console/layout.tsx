/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import { consoleAssets } from "./assets.js";
import { CSRF_HEADER } from "./security.js";

/** Where the console is mounted on the admin listener. */
export const CONSOLE_PATH = "/console";

/** The sections of the console, in the navigation's order. */
const SECTIONS = [
  { id: "overview", label: "Overview", href: CONSOLE_PATH },
  { id: "requests", label: "Requests", href: `${CONSOLE_PATH}/requests` },
  { id: "dead-letters", label: "Dead letters", href: `${CONSOLE_PATH}/dead-letters` },
  { id: "audit", label: "Audit log", href: `${CONSOLE_PATH}/audit` },
] as const;
export type Section = (typeof SECTIONS)[number]["id"];

/** What every page knows of its viewer. */
export interface Viewer {
  name: string;
  role: string;
  csrf: string;
  nonce: string;
}

/**
 * The page shell: landmarks (banner, navigation, main), a skip link, the style sheet and htmx (both
 * served by the gateway), and the CSRF token sent by htmx as a header on every request it makes.
 * htmx runs without eval, without its injected indicator style and without settling style attributes,
 * so the CSP needs no inline allowance.
 */
export function Layout(props: { title: string; section: Section; viewer: Viewer; children?: Child }) {
  const { htmx, css } = consoleAssets();
  const { viewer } = props;
  const htmxConfig = JSON.stringify({
    includeIndicatorStyles: false,
    allowEval: false,
    allowScriptTags: false,
    selfRequestsOnly: true,
    historyCacheSize: 0,
    // settling copies these attributes with setAttribute: a style attribute would be inline style
    attributesToSettle: ["class"],
    inlineStyleNonce: viewer.nonce,
    inlineScriptNonce: viewer.nonce,
  });
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content={htmxConfig} />
        <title>{`${props.title} · ESS gateway console`}</title>
        <link rel="stylesheet" href={`${CONSOLE_PATH}/assets/${css.name}`} />
        <script src={`${CONSOLE_PATH}/assets/${htmx.name}`} defer></script>
      </head>
      <body hx-headers={JSON.stringify({ [CSRF_HEADER]: viewer.csrf })}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <span class="brand">ESS gateway console</span>
          <nav aria-label="Console sections">
            <ul>
              {SECTIONS.map((s) => (
                <li>
                  <a href={s.href} aria-current={s.id === props.section ? "page" : undefined}>
                    {s.label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
          <span class="who">
            Signed in as <strong>{viewer.name}</strong> ({viewer.role})
          </span>
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** The outcome of the last action, if any: a status line, or an alert when it was refused or failed. */
export interface Notice {
  ok: boolean;
  text: string;
}

export function NoticeLine(props: { notice: Notice | undefined }) {
  const { notice } = props;
  if (!notice) return null;
  return (
    <p class={notice.ok ? "notice" : "notice bad"} role={notice.ok ? "status" : "alert"}>
      {notice.text}
    </p>
  );
}

/** What went wrong with the page's input or the last action, as an alert. */
export function ErrorLine(props: { error: string | undefined }) {
  return props.error ? <NoticeLine notice={{ ok: false, text: props.error }} /> : null;
}

/**
 * A list's pager: a link back to the first page when on a later one, and the next page's link or the
 * end of the list.
 */
export function Pager(props: {
  first: { href: string; label: string } | undefined;
  next: { href: string; label: string } | undefined;
  end: string;
}) {
  return (
    <nav class="pager" aria-label="Pages">
      {props.first ? <a href={props.first.href}>{props.first.label}</a> : null}
      {props.next ? (
        <a rel="next" href={props.next.href}>
          {props.next.label}
        </a>
      ) : (
        <span class="muted">{props.end}</span>
      )}
    </nav>
  );
}

/** The partition filter: one option per partition, and "all". */
export function PartitionSelect(props: { id: string; partitions: number; selected: number | undefined }) {
  return (
    <label class="field" for={props.id}>
      Partition
      <select id={props.id} name="partition">
        <option value="">all</option>
        {Array.from({ length: props.partitions }, (_, p) => (
          <option value={String(p)} selected={props.selected === p}>
            {p}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A time (ms since the epoch) as ISO 8601 UTC to the second, in a <time> element. */
export function Time(props: { ms: number | string | undefined }) {
  const ms = typeof props.ms === "string" ? Number(props.ms) : props.ms;
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) return <span class="muted">—</span>;
  const iso = new Date(ms).toISOString();
  return <time datetime={iso}>{`${iso.slice(0, 19).replace("T", " ")}Z`}</time>;
}

/** The badge class of a state: red for what needs an operator, amber for what is in motion. */
export function stateTone(state: string | undefined): "bad" | "warn" | "ok" | "muted" {
  switch (state) {
    case "ERROR_MANUAL_RECOVERY":
    case "ERROR":
    case "PAUSED":
    case "VALIDATION_FAILED":
      return "bad";
    case "ERROR_AUTO_RETRY":
    case "CANCELLING":
    case "WARNING":
    case "BLOCKED":
    case "HOLD":
      return "warn";
    case "SUCCEEDED":
    case "FINISHED":
      return "ok";
    default:
      return "muted";
  }
}

/** A state as a badge (the text carries the meaning; the colour only repeats it). */
export function StateBadge(props: { state: string | undefined }) {
  return <span class={`badge ${stateTone(props.state)}`}>{props.state ?? "unknown"}</span>;
}
