/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { EssError } from "@ess/domain";
import type { Context, Hono } from "hono";
import type { AppEnv, GatewayDeps } from "../context.js";
import { honoPath } from "../routes/bind.js";
import { consoleAssets } from "./assets.js";
import {
  DEAD_LETTERS_PAGE_SIZE,
  type DeadLetterFilters,
  DeadLettersView,
  parseDeadLetterFilters,
  toDeadLetterQuery,
} from "./dead-letters.js";
import { parseRequestFilters, type RequestFilters } from "./filters.js";
import { CONSOLE_PATH, Layout, type Section, type Viewer } from "./layout.js";
import { OverviewLive } from "./overview.js";
import { loadRequestDetail, RequestView } from "./request.js";
import { loadRequests, type RequestsPage, RequestsView } from "./requests.js";
import { CONSOLE_ROUTES } from "./routes.js";
import { type ConsoleEnv, CsrfTokens, securityHeaders } from "./security.js";
import { OverviewSnapshots } from "./snapshot.js";

/** Seconds between two polls of the overview's live part. */
const POLL_SECONDS = 5;

/** The console's role for a principal: what it may see and do. */
type ConsoleRole = "viewer" | "operator" | "admin";

/** Options of the console (tests shorten the snapshot interval). */
export interface ConsoleOptions {
  /** the overview's numbers are read from Redis at most once per this interval (default 2 s) */
  snapshotMs?: number;
}

const path = (r: { path: string }) => honoPath(r.path);

/** The message of a refused input or action, for the page (never an internal error's). */
function messageOf(err: unknown): { status: 400 | 403 | 404 | 409; text: string } | null {
  if (!(err instanceof EssError)) return null;
  switch (err.code) {
    case "FORBIDDEN":
      return { status: 403, text: err.message };
    case "REQUEST_NOT_FOUND":
    case "ROUTE_NOT_FOUND":
      return { status: 404, text: err.message };
    default:
      return { status: 400, text: err.message };
  }
}

/**
 * The operator console at /console on the admin listener: server-rendered pages (Hono's JSX) that
 * htmx refreshes in place, with a strict CSP, CSRF-checked POSTs, and the roles of the admin
 * listener's credentials. It reads through the same store functions as the API and acts through the
 * operator service layer, which checks the role and writes the audit log.
 */
export function mountConsole(app: Hono<AppEnv>, deps: GatewayDeps, opts: ConsoleOptions = {}): void {
  const ui = app as unknown as Hono<ConsoleEnv>;
  const csrf = new CsrfTokens();
  const snapshots = new OverviewSnapshots(
    { store: deps.store, deadLetters: deps.deadLetters, catalog: deps.ops?.catalog, backlog: deps.ops?.backlog },
    opts.snapshotMs ?? 2000,
  );
  const partitions = deps.store.keys.partitions;

  const roleOf = (c: Context<ConsoleEnv>): ConsoleRole => {
    const p = c.get("principal");
    return !p || p.roles.has("admin") ? "admin" : "viewer";
  };
  const viewer = (c: Context<ConsoleEnv>): Viewer => {
    const p = c.get("principal");
    return {
      name: p?.name ?? "anonymous",
      role: roleOf(c),
      csrf: csrf.tokenFor(p, c.req.header("authorization")),
      nonce: c.get("nonce"),
    };
  };
  const render = (
    c: Context<ConsoleEnv>,
    section: Section,
    title: string,
    body: unknown,
    status: 200 | 400 | 403 | 404 | 409 = 200,
  ) =>
    c.html(
      `<!doctype html>${String(
        <Layout title={title} section={section} viewer={viewer(c)}>
          {body as never}
        </Layout>,
      )}`,
      status,
    );

  ui.use(`${CONSOLE_PATH}/*`, securityHeaders());
  ui.use(CONSOLE_PATH, securityHeaders());

  ui.get(path(CONSOLE_ROUTES.assets), (c) => {
    const asset = consoleAssets().byName.get(c.req.param("file") ?? "");
    if (!asset) throw new EssError("ROUTE_NOT_FOUND", "no such console asset");
    return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, {
      "content-type": asset.type,
      "cache-control": "public, max-age=31536000, immutable",
    });
  });

  ui.get(path(CONSOLE_ROUTES.overview), async (c) => {
    const snap = await snapshots.get();
    return render(c, "overview", "Overview", <OverviewLive snap={snap} pollSeconds={POLL_SECONDS} />);
  });
  ui.get(path(CONSOLE_ROUTES.overviewLive), async (c) => {
    const snap = await snapshots.get();
    return c.html(String(<OverviewLive snap={snap} pollSeconds={POLL_SECONDS} />));
  });

  ui.get(path(CONSOLE_ROUTES.requests), async (c) => {
    const params = new URL(c.req.url).searchParams;
    let f: RequestFilters = { states: [] };
    let page: RequestsPage | undefined;
    try {
      f = parseRequestFilters(params, partitions);
      page = await loadRequests(deps, f, Date.now());
    } catch (err) {
      const m = messageOf(err);
      if (!m) throw err;
      const view = (
        <RequestsView
          f={f}
          partitions={partitions}
          error={m.text}
          partitionOf={(id) => deps.store.keys.partition(id)}
        />
      );
      return render(c, "requests", "Requests", view, 400);
    }
    const view = (
      <RequestsView f={f} partitions={partitions} page={page} partitionOf={(id) => deps.store.keys.partition(id)} />
    );
    return render(c, "requests", "Requests", view);
  });

  ui.get(path(CONSOLE_ROUTES.request), async (c) => {
    const requestId = c.req.param("requestId") ?? "";
    const d = /^[0-9]{1,19}$/.test(requestId) ? await loadRequestDetail(deps, requestId) : null;
    if (!d) {
      const body = <p class="notice bad">Request {requestId.slice(0, 40)} is not registered.</p>;
      return render(c, "requests", "Request not found", body, 404);
    }
    const view = <RequestView d={d} actions={[]} canAct={false} csrf={viewer(c).csrf} />;
    return render(c, "requests", `Request ${requestId}`, view);
  });

  ui.get(path(CONSOLE_ROUTES.deadLetters), async (c) => {
    const params = new URL(c.req.url).searchParams;
    const role = roleOf(c);
    const flags = { canReplay: role !== "viewer", canPurge: role === "admin", canBulk: role === "admin" };
    let f: DeadLetterFilters = {};
    try {
      f = parseDeadLetterFilters((n) => params.get(n) ?? undefined, partitions);
      const query = toDeadLetterQuery(f);
      const [page, matching] = await Promise.all([
        deps.deadLetters.list(query, { limit: DEAD_LETTERS_PAGE_SIZE, cursor: f.cursor }),
        deps.deadLetters.countMatching(query),
      ]);
      const view = (
        <DeadLettersView
          f={f}
          partitions={partitions}
          items={page.items}
          nextCursor={page.nextCursor}
          matching={matching}
          csrf={viewer(c).csrf}
          {...flags}
        />
      );
      return render(c, "dead-letters", "Dead letters", view);
    } catch (err) {
      const m = messageOf(err);
      if (!m) throw err;
      const view = <DeadLettersView f={f} partitions={partitions} error={m.text} csrf={viewer(c).csrf} {...flags} />;
      return render(c, "dead-letters", "Dead letters", view, m.status);
    }
  });
}
