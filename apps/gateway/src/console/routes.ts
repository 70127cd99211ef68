import { CONSOLE_ACTION_ROLES, CONSOLE_READ_ROLES, declareRoute, type Role } from "@ess/contract";

const hidden = { hide: true, external: true } as const;
const page = (description: string) => ({ 200: { description } });

/**
 * Who may read the console, act on one request or dead letter (a purge needs admin: the service
 * layer refuses it to an operator), and run bulk actions (admin alone: admin is always allowed).
 */
const READ: readonly [Role, ...Role[]] = CONSOLE_READ_ROLES;
const ACT: readonly [Role, ...Role[]] = CONSOLE_ACTION_ROLES;
const BULK: readonly [Role, ...Role[]] = ["admin"];

/**
 * The operator console on the admin listener, one declaration per path: the access table derives
 * from these (whoever may read sees the pages; the POSTs need the role of what they do, and the
 * service layer checks it again). Served by console/index.tsx, not in the OpenAPI document.
 */
export const CONSOLE_ROUTES = {
  overview: declareRoute({
    ...hidden,
    method: "get",
    path: "/console",
    operationId: "consoleOverview",
    operation: "console",
    roles: READ,
    summary: "Console: overview",
    responses: page("HTML page"),
  }),
  overviewLive: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/overview/live",
    operationId: "consoleOverviewLive",
    operation: "console",
    roles: READ,
    summary: "Console: the overview's numbers (an htmx fragment, polled)",
    responses: page("HTML fragment"),
  }),
  assets: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/assets/{file}",
    operationId: "consoleAsset",
    operation: "console",
    roles: READ,
    summary: "Console: htmx and the style sheet (content-hashed names, cached a year)",
    responses: page("A static file"),
  }),
  requests: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/requests",
    operationId: "consoleRequests",
    operation: "console",
    roles: READ,
    summary: "Console: requests by filter (the filters are the query string)",
    responses: page("HTML page"),
  }),
  request: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/requests/{requestId}",
    operationId: "consoleRequest",
    operation: "console",
    roles: READ,
    summary: "Console: one request, its timeline and the actions valid now",
    responses: page("HTML page"),
  }),
  requestAction: declareRoute({
    ...hidden,
    method: "post",
    path: "/console/requests/{requestId}/actions/{action}",
    operationId: "consoleRequestAction",
    operation: "consoleAction",
    roles: ACT,
    summary: "Console: cancel, forceCancel, re-arm or replay the dead letters of one request, with a reason",
    responses: page("The request page again, with the outcome"),
  }),
  deadLetters: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/dead-letters",
    operationId: "consoleDeadLetters",
    operation: "console",
    roles: READ,
    summary: "Console: dead letters by filter",
    responses: page("HTML page"),
  }),
  deadLetterAction: declareRoute({
    ...hidden,
    method: "post",
    path: "/console/dead-letters/{id}/{action}",
    operationId: "consoleDeadLetterAction",
    operation: "consoleAction",
    roles: ACT,
    summary: "Console: replay (operator) or purge (admin) one dead letter, with a reason",
    responses: page("The dead-letter page again, with the outcome"),
  }),
  bulkCreate: declareRoute({
    ...hidden,
    method: "post",
    path: "/console/bulk/new",
    operationId: "consoleBulkCreate",
    operation: "consoleBulk",
    roles: BULK,
    summary: "Console: step 1 of a bulk replay or purge: the server snapshots the filter and estimates the count",
    responses: page("Redirect to the bulk action"),
  }),
  bulk: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/bulk/{bulkId}",
    operationId: "consoleBulk",
    operation: "console",
    roles: READ,
    summary: "Console: a bulk action: confirm, progress or results, by its stage",
    responses: page("HTML page"),
  }),
  bulkProgress: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/bulk/{bulkId}/progress",
    operationId: "consoleBulkProgress",
    operation: "console",
    roles: READ,
    summary: "Console: a running bulk action's progress (an htmx fragment, polled)",
    responses: page("HTML fragment"),
  }),
  bulkStep: declareRoute({
    ...hidden,
    method: "post",
    path: "/console/bulk/{bulkId}/{step}",
    operationId: "consoleBulkStep",
    operation: "consoleBulk",
    roles: BULK,
    summary: "Console: confirm a bulk action with the typed count, or abort it",
    responses: page("Redirect to the bulk action"),
  }),
  bulkList: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/bulk",
    operationId: "consoleBulkList",
    operation: "console",
    roles: READ,
    summary: "Console: recent bulk actions",
    responses: page("HTML page"),
  }),
  audit: declareRoute({
    ...hidden,
    method: "get",
    path: "/console/audit",
    operationId: "consoleAudit",
    operation: "console",
    roles: READ,
    summary: "Console: the audit log, filtered and paged",
    responses: page("HTML page"),
  }),
} as const;
