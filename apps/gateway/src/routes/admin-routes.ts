import { ADMIN_OPERATIONS_ROUTES, HEALTH_ROUTES, type RouteDeclaration } from "@ess/contract";
import { CONSOLE_ROUTES } from "../console/routes.js";
import { DEAD_LETTER_ROUTES } from "./dead-letters.js";
import { OPERATOR_ROUTES } from "./operator.js";

/**
 * Every route of the admin listener: probes, metrics, the dashboard, the dead-letter API, the operator
 * console's API and the console's pages.
 */
export const ADMIN_ROUTES: readonly RouteDeclaration[] = [
  ...HEALTH_ROUTES,
  ...Object.values(ADMIN_OPERATIONS_ROUTES),
  ...Object.values(DEAD_LETTER_ROUTES),
  ...Object.values(OPERATOR_ROUTES),
  ...Object.values(CONSOLE_ROUTES),
];
