/** @jsxRuntime automatic */
/** @jsxImportSource hono/jsx */
import { EssError } from "@ess/domain";
import type { BulkKind } from "@ess/store";
import type { Context, Hono } from "hono";
import { jsxRenderer } from "hono/jsx-renderer";
import { readText } from "../body.js";
import type { AppEnv, GatewayDeps } from "../context.js";
import {
  type OperatorActions,
  operatorActions,
  operatorOf,
  REQUEST_ACTIONS,
  type RequestAction,
} from "../operator/actions.js";
import { type ConsoleRole, can, consoleRole } from "../operator/roles.js";
import { honoPath } from "../routes/bind.js";
import { consoleAssets } from "./assets.js";
import { AUDIT_PAGE_SIZE, AuditView, parseAuditFilters } from "./audit.js";
import { BulkList, BulkProgress, BulkView } from "./bulk.js";
import {
  DEAD_LETTERS_PAGE_SIZE,
  type DeadLetterFilters,
  DeadLettersView,
  parseDeadLetterFilters,
  toDeadLetterQuery,
} from "./dead-letters.js";
import { parseRequestFilters, type RequestFilters } from "./filters.js";
import { CONSOLE_PATH, Layout, type Notice, type Section, type Viewer } from "./layout.js";
import { OverviewLive } from "./overview.js";
import { loadRequestDetail, type OfferedAction, RequestView } from "./request.js";
import { loadRequests, type RequestsPage, RequestsView } from "./requests.js";
import { CONSOLE_ROUTES } from "./routes.js";
import { type ConsoleEnv, CSRF_FIELD, CSRF_HEADER, CsrfTokens, checkSameOrigin, securityHeaders } from "./security.js";
import { OverviewSnapshots } from "./snapshot.js";

/** Seconds between two polls of the overview's live part. */
const POLL_SECONDS = 5;
/** The overview's numbers are read from Redis at most once per this interval, however many viewers poll. */
const SNAPSHOT_MS = 2000;
/** Largest console form body (a reason and a few filter fields). */
const MAX_FORM_BYTES = 16 * 1024;

/** What each request action is called on its button, and what it does. */
const ACTION_TEXT: Record<RequestAction, { label: string; description: string }> = {
  cancel: { label: "Cancel", description: "ESS cancel: at once, or CANCELLING while the job runs." },
  forceCancel: { label: "Force cancel", description: "CANCELLING → CANCELLED without the job (it has been quiet)." },
  rearm: { label: "Re-arm", description: "Operator recovery: register the request again under a new handle." },
  replayDeadLetters: { label: "Replay dead letters", description: "Put this request's dead-lettered jobs back." },
};

type Status = 200 | 400 | 403 | 404 | 409 | 413 | 415;
const path = (r: { path: string }) => honoPath(r.path);

/** True when the client reads HTML (a browser): refusals are pages, not JSON. */
function wantsHtml(c: Context): boolean {
  return (c.req.header("accept") ?? "").includes("text/html");
}

/**
 * The page message and status of a refused input or action, for a browser; null when the error goes
 * to onError instead: an unexpected one (500), or any refusal asked for by a client that does not read
 * HTML (a SimpleExceptionDetail, as everywhere else on the listener).
 */
function refusal(err: unknown, c: Context): { status: Status; text: string } | null {
  if (!(err instanceof EssError) || !wantsHtml(c)) return null;
  switch (err.code) {
    case "FORBIDDEN":
    case "UNAUTHENTICATED":
      return { status: 403, text: err.detail };
    case "REQUEST_NOT_FOUND":
    case "ROUTE_NOT_FOUND":
      return { status: 404, text: err.detail };
    case "ACTION_CONFLICT":
      return { status: 409, text: err.detail };
    default:
      return { status: 400, text: err.detail };
  }
}

/**
 * The operator console at /console on the admin listener: server-rendered pages (Hono's JSX) that
 * htmx refreshes in place, with a strict CSP, CSRF-checked POSTs, and the console roles of the
 * admin listener's credentials. It reads through the same store functions as the API (the request
 * index, the dead-letter listing, the audit log) and acts only through the operator service layer,
 * which checks the role again, requires the reason and writes the audit log.
 */
export function mountConsole(app: Hono<AppEnv>, deps: GatewayDeps): void {
  const ui = app as unknown as Hono<ConsoleEnv>;
  const csrf = new CsrfTokens();
  const snapshots = new OverviewSnapshots(
    {
      store: deps.store,
      deadLetters: deps.deadLetters,
      catalog: deps.ops?.catalog,
      backlog: deps.ops?.backlog,
      readiness: deps.ops?.readiness,
    },
    SNAPSHOT_MS,
  );
  const partitions = deps.store.keys.partitions;
  const partitionOf = (id: string) => deps.store.keys.partition(id);
  let service: OperatorActions | undefined;
  const actions = () => {
    service ??= operatorActions(deps);
    return service;
  };

  // without the operations layer (no authentication at all) the console is the local admin's
  const roleOf = (c: Context<ConsoleEnv>): ConsoleRole | undefined =>
    deps.ops ? consoleRole(c.get("principal")) : "admin";
  const operator = (c: Context<ConsoleEnv>) => {
    const op = deps.ops ? operatorOf(c.get("principal")) : { actor: "local", role: "admin" as const };
    if (!op) throw new EssError("FORBIDDEN", "this credential has no console role");
    return op;
  };
  const viewer = (c: Context<ConsoleEnv>): Viewer => {
    const p = c.get("principal");
    return {
      name: p?.name ?? "local",
      role: roleOf(c) ?? "none",
      csrf: csrf.tokenFor(p, c.req.header("authorization")),
      nonce: c.get("nonce"),
    };
  };
  /** A page in the console's layout (Hono's JSX renderer), with its status. */
  const render = (c: Context<ConsoleEnv>, section: Section, title: string, body: unknown, status: Status = 200) => {
    c.set("page", { title, section });
    c.status(status);
    return c.render(body as string);
  };
  const renderer = jsxRenderer(({ children }, c) => {
    const { title, section } = (c as Context<ConsoleEnv>).get("page");
    return (
      <Layout title={title} section={section as Section} viewer={viewer(c as Context<ConsoleEnv>)}>
        {children}
      </Layout>
    );
  });

  /**
   * The checks of every console POST, in order: same origin (Sec-Fetch-Site, Origin), a form body of
   * bounded size, the CSRF token of this credential (form field or htmx's header). Returns the form.
   */
  const form = async (c: Context<ConsoleEnv>): Promise<(name: string) => string | undefined> => {
    checkSameOrigin(c, deps.publicBaseUrl);
    const type = c.req.header("content-type") ?? "";
    if (!type.startsWith("application/x-www-form-urlencoded")) {
      throw new EssError("UNSUPPORTED_MEDIA_TYPE", "console forms are application/x-www-form-urlencoded");
    }
    const body = new URLSearchParams(await readText(c as unknown as Context<AppEnv>, MAX_FORM_BYTES));
    const token = body.get(CSRF_FIELD) ?? c.req.header(CSRF_HEADER);
    if (!csrf.verify(token ?? undefined, c.get("principal"), c.req.header("authorization"))) {
      throw new EssError("FORBIDDEN", "the form's CSRF token is missing or not this credential's: reload the page");
    }
    return (name) => body.get(name) ?? undefined;
  };

  for (const at of [CONSOLE_PATH, `${CONSOLE_PATH}/*`]) ui.use(at, securityHeaders(), renderer);

  ui.get(path(CONSOLE_ROUTES.assets), (c) => {
    const asset = consoleAssets().byName.get(c.req.param("file") ?? "");
    if (!asset) throw new EssError("ROUTE_NOT_FOUND", "no such console asset");
    return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, {
      "content-type": asset.type,
      "cache-control": "public, max-age=31536000, immutable",
    });
  });

  // --- overview ---
  ui.get(path(CONSOLE_ROUTES.overview), async (c) => {
    const snap = await snapshots.get();
    return render(c, "overview", "Overview", <OverviewLive snap={snap} pollSeconds={POLL_SECONDS} />);
  });
  ui.get(path(CONSOLE_ROUTES.overviewLive), async (c) => {
    const snap = await snapshots.get();
    return c.html(String(<OverviewLive snap={snap} pollSeconds={POLL_SECONDS} />));
  });

  // --- requests ---
  ui.get(path(CONSOLE_ROUTES.requests), async (c) => {
    const params = new URL(c.req.url).searchParams;
    let f: RequestFilters = { states: [] };
    let page: RequestsPage;
    try {
      f = parseRequestFilters(params, partitions);
      page = await loadRequests(deps, f, Date.now());
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      const view = <RequestsView f={f} partitions={partitions} error={r.text} partitionOf={partitionOf} />;
      return render(c, "requests", "Requests", view, r.status);
    }
    const view = <RequestsView f={f} partitions={partitions} page={page} partitionOf={partitionOf} />;
    return render(c, "requests", "Requests", view);
  });

  const requestPage = async (c: Context<ConsoleEnv>, requestId: string, notice?: Notice, status: Status = 200) => {
    const d = /^[0-9]{1,19}$/.test(requestId) ? await loadRequestDetail(deps, requestId) : null;
    if (!d) {
      const missing = new EssError("REQUEST_NOT_FOUND", `request ${requestId.slice(0, 40)} is not registered`);
      if (!wantsHtml(c)) throw missing;
      const body = <p class="notice bad">{missing.detail}.</p>;
      return render(c, "requests", "Request not found", body, 404);
    }
    const canAct = can(roleOf(c), "requestAction");
    const states = canAct ? await actions().actionStates(requestId) : [];
    const offered: OfferedAction[] = states
      .filter((a) => a.valid)
      .map((a) => ({
        action: a.action,
        ...ACTION_TEXT[a.action],
        ...(a.count ? { label: `Replay ${a.count} dead letters` } : {}),
      }));
    const forceCancelFrom = states.find((a) => a.action === "forceCancel" && !a.valid)?.allowedAt;
    const view = (
      <RequestView
        d={d}
        actions={offered}
        canAct={canAct}
        csrf={viewer(c).csrf}
        notice={notice}
        forceCancelFrom={forceCancelFrom}
      />
    );
    return render(c, "requests", `Request ${requestId}`, view, status);
  };

  ui.get(path(CONSOLE_ROUTES.request), (c) => requestPage(c, c.req.param("requestId") ?? ""));

  ui.post(path(CONSOLE_ROUTES.requestAction), async (c) => {
    const requestId = c.req.param("requestId") ?? "";
    const action = c.req.param("action") ?? "";
    const get = await form(c);
    if (!(REQUEST_ACTIONS as readonly string[]).includes(action)) {
      throw new EssError("ROUTE_NOT_FOUND", `no request action '${action.slice(0, 40)}'`);
    }
    const reason = get("reason") ?? "";
    const svc = actions();
    const op = operator(c);
    try {
      const run = {
        cancel: () => svc.cancel(op, requestId, reason),
        forceCancel: () => svc.forceCancel(op, requestId, reason),
        rearm: () => svc.rearm(op, requestId, reason),
        replayDeadLetters: () => svc.replayRequestDeadLetters(op, requestId, reason),
      } satisfies Record<RequestAction, unknown>;
      const r = await run[action as RequestAction]();
      const moved = r.from === r.to ? `state ${r.to}` : `${r.from} → ${r.to}`;
      const extra =
        r.replayed !== undefined
          ? `; ${r.replayed} replayed${r.notFound ? `, ${r.notFound} already gone` : ""}`
          : r.requestExecutionContext
            ? `; the job's new execution context is ${r.requestExecutionContext}`
            : "";
      const text = `${ACTION_TEXT[r.action].label}: ${moved}${extra} (audit entry ${r.auditId}).`;
      return requestPage(c, requestId, { ok: true, text });
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      return requestPage(c, requestId, { ok: false, text: r.text }, r.status);
    }
  });

  // --- dead letters ---
  const deadLettersPage = async (
    c: Context<ConsoleEnv>,
    params: (name: string) => string | undefined,
    notice?: Notice,
    status: Status = 200,
  ) => {
    const role = roleOf(c);
    const flags = {
      canReplay: can(role, "replayDeadLetter"),
      canPurge: can(role, "purgeDeadLetter"),
      canBulk: can(role, "bulk"),
      csrf: viewer(c).csrf,
      notice,
    };
    let f: DeadLetterFilters = {};
    try {
      f = parseDeadLetterFilters(params, partitions);
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
          {...flags}
        />
      );
      return render(c, "dead-letters", "Dead letters", view, status);
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      const view = <DeadLettersView f={f} partitions={partitions} error={r.text} {...flags} />;
      return render(c, "dead-letters", "Dead letters", view, r.status);
    }
  };

  ui.get(path(CONSOLE_ROUTES.deadLetters), (c) => {
    const params = new URL(c.req.url).searchParams;
    return deadLettersPage(c, (n) => params.get(n) ?? undefined);
  });

  ui.post(path(CONSOLE_ROUTES.deadLetterAction), async (c) => {
    const id = c.req.param("id") ?? "";
    const action = c.req.param("action") ?? "";
    const get = await form(c);
    if (action !== "replay" && action !== "purge") {
      throw new EssError("ROUTE_NOT_FOUND", `no dead-letter action '${action.slice(0, 40)}'`);
    }
    const op = operator(c);
    const reason = get("reason") ?? "";
    const none = () => undefined;
    try {
      const r =
        action === "replay"
          ? await actions().replayDeadLetter(op, id, reason)
          : await actions().purgeDeadLetter(op, id, reason);
      return deadLettersPage(c, none, {
        ok: true,
        text: `Dead letter ${r.id} ${r.result} (audit entry ${r.auditId}).`,
      });
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      return deadLettersPage(c, none, { ok: false, text: r.text }, r.status);
    }
  });

  // --- bulk actions: create (estimate) → confirm (typed count) → progress (abort) → results ---
  ui.post(path(CONSOLE_ROUTES.bulkCreate), async (c) => {
    const get = await form(c);
    const kind = get("action");
    if (kind !== "replay" && kind !== "purge") throw new EssError("INVALID_BODY", "action must be replay or purge");
    const op = operator(c);
    try {
      const filter = toDeadLetterQuery(parseDeadLetterFilters(get, partitions));
      const a = await actions().createBulk(op, kind as BulkKind, filter);
      return c.redirect(`${CONSOLE_PATH}/bulk/${a.id}`, 303);
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      return deadLettersPage(c, get, { ok: false, text: r.text }, r.status);
    }
  });

  const bulkPage = async (c: Context<ConsoleEnv>, id: string, error?: string, status: Status = 200) => {
    const a = await actions().getBulk(id);
    if (!a) {
      if (!wantsHtml(c)) throw new EssError("ROUTE_NOT_FOUND", `no bulk action ${id.slice(0, 40)}`);
      return render(
        c,
        "dead-letters",
        "Bulk action not found",
        <p class="notice bad">No bulk action {id.slice(0, 40)}.</p>,
        404,
      );
    }
    const title = `Bulk ${a.kind} ${a.id}`;
    const view = <BulkView a={a} csrf={viewer(c).csrf} canAct={can(roleOf(c), "bulk")} error={error} />;
    return render(c, "dead-letters", title, view, status);
  };

  ui.get(path(CONSOLE_ROUTES.bulkList), async (c) => {
    const items = await actions().listBulk();
    return render(c, "dead-letters", "Bulk actions", <BulkList items={items} />);
  });
  ui.get(path(CONSOLE_ROUTES.bulk), (c) => bulkPage(c, c.req.param("bulkId") ?? ""));
  ui.get(path(CONSOLE_ROUTES.bulkProgress), async (c) => {
    const a = await actions().getBulk(c.req.param("bulkId") ?? "");
    if (!a) throw new EssError("ROUTE_NOT_FOUND", "no such bulk action");
    return c.html(String(<BulkProgress a={a} csrf={viewer(c).csrf} canAct={can(roleOf(c), "bulk")} />));
  });
  ui.post(path(CONSOLE_ROUTES.bulkStep), async (c) => {
    const id = c.req.param("bulkId") ?? "";
    const step = c.req.param("step") ?? "";
    const get = await form(c);
    const op = operator(c);
    const reason = get("reason") ?? "";
    try {
      if (step === "confirm") {
        const raw = (get("count") ?? "").trim();
        if (!/^[0-9]{1,9}$/.test(raw)) throw new EssError("INVALID_BODY", "type the number of dead letters, in digits");
        await actions().confirmBulk(op, id, Number(raw), reason);
      } else if (step === "abort") {
        await actions().abortBulk(op, id, reason);
      } else {
        throw new EssError("ROUTE_NOT_FOUND", `no bulk step '${step.slice(0, 40)}'`);
      }
      return c.redirect(`${CONSOLE_PATH}/bulk/${id}`, 303);
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      return bulkPage(c, id, r.text, r.status);
    }
  });

  // --- audit ---
  ui.get(path(CONSOLE_ROUTES.audit), async (c) => {
    const f = parseAuditFilters(new URL(c.req.url).searchParams);
    try {
      const page = await actions().listAudit({ ...f, limit: AUDIT_PAGE_SIZE });
      return render(c, "audit", "Audit log", <AuditView f={f} items={page.items} next={page.next} />);
    } catch (err) {
      const r = refusal(err, c);
      if (!r) throw err;
      return render(c, "audit", "Audit log", <AuditView f={f} error={r.text} />, r.status);
    }
  });
}
