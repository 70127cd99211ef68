import { assertRoles, GATEWAY_ROUTES, type Role, type RouteDeclaration } from "@ess/contract";
import { ADMIN_ROUTES } from "../routes/admin-routes.js";
import type { Principal } from "./authenticator.js";

/** One access rule: requests whose path matches (and method, when given) need one of `roles`. */
export interface AccessRule {
  operation: string;
  method?: string;
  pattern: RegExp;
  /** Roles allowed besides admin (admin is allowed everywhere); "public" = no credentials needed. */
  roles: readonly Role[] | "public";
}

const PARAM = /\{\w+\}/g;

/** The path pattern of a declared route: `{param}` is one segment; a subtree also covers what is below. */
function pathPattern(route: RouteDeclaration): RegExp {
  const literals = route.path.split(PARAM).map((p) => p.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${literals.join("[^/]+")}${route.subtree ? "(/.*)?" : ""}$`);
}

/**
 * A listener's access table, derived from its route declarations: one rule per path (any method,
 * so that a wrong method still gets its 405 from the route), literal paths before parameterised
 * ones; admin is allowed everywhere and a path no rule matches needs admin. The routes of one path
 * must agree on operation and roles.
 */
export function accessRules(routes: readonly RouteDeclaration[]): AccessRule[] {
  const byPath = new Map<string, AccessRule>();
  for (const route of routes) {
    assertRoles(route);
    const roles = route.roles === "public" ? "public" : route.roles.filter((r) => r !== "admin");
    const rule: AccessRule = { operation: route.operation, pattern: pathPattern(route), roles };
    const seen = byPath.get(route.path);
    if (seen && (seen.operation !== rule.operation || JSON.stringify(seen.roles) !== JSON.stringify(rule.roles))) {
      throw new Error(`the routes of ${route.path} disagree on operation or roles`);
    }
    if (!seen) byPath.set(route.path, rule);
  }
  const params = (path: string) => path.match(PARAM)?.length ?? 0;
  return [...byPath.entries()].sort(([a], [b]) => params(a) - params(b)).map(([, rule]) => rule);
}

/** THE access table of the callback listener, from its route declarations. */
export const ACCESS_RULES: readonly AccessRule[] = accessRules(GATEWAY_ROUTES);

/** The admin listener's table: health is public, everything else (metrics, dashboard, dead letters) needs admin. */
export const ADMIN_ACCESS_RULES: readonly AccessRule[] = accessRules(ADMIN_ROUTES);

const FALLBACK: AccessRule = { operation: "other", pattern: /.*/, roles: [] };

/** The rule that governs a request (bounded set of operation names: also the metrics' route label). */
export function ruleFor(rules: readonly AccessRule[], method: string, path: string): AccessRule {
  for (const r of rules) {
    if (r.method !== undefined && r.method !== method) continue;
    if (r.pattern.test(path)) return r;
  }
  return FALLBACK;
}

/** True when the principal may perform what the rule guards. */
export function allows(rule: AccessRule, principal: Principal | undefined): boolean {
  if (rule.roles === "public") return true;
  if (!principal) return false;
  if (principal.roles.has("admin")) return true;
  return rule.roles.some((r) => principal.roles.has(r));
}
