import { ADMIN_OPERATIONS_ROUTES, HEALTH_ROUTES, type RouteDeclaration } from "@ess/contract";
import { DEAD_LETTER_ROUTES } from "./dead-letters.js";

/** Every route of the admin listener: probes, metrics, the dashboard, the dead-letter API. */
export const ADMIN_ROUTES: readonly RouteDeclaration[] = [
  ...HEALTH_ROUTES,
  ...Object.values(ADMIN_OPERATIONS_ROUTES),
  ...Object.values(DEAD_LETTER_ROUTES),
];
