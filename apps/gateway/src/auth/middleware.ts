import type { IncomingMessage } from "node:http";
import { EssError } from "@ess/domain";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context.js";
import { type AccessRule, allows, ruleFor } from "./access-rules.js";
import type { Authenticator, Principal } from "./authenticator.js";

/** The caller, or a 401 (answered with WWW-Authenticate, see errors.ts) without valid credentials. */
export function requirePrincipal(principal: Principal | null): Principal {
  if (!principal) throw new EssError("UNAUTHENTICATED", "valid credentials are required (HTTP Basic or Bearer)");
  return principal;
}

/** A 403 unless the principal's roles cover what the rule guards. */
export function requireRole(rule: AccessRule, principal: Principal): void {
  if (!allows(rule, principal)) {
    const need = rule.roles !== "public" && rule.roles.length > 0 ? rule.roles.join(" or ") : "admin";
    throw new EssError("FORBIDDEN", `'${principal.name}' lacks the role for ${rule.operation} (needs ${need})`);
  }
}

/**
 * Authentication and role check against a rule table: 401 + WWW-Authenticate without valid
 * credentials, 403 when the roles do not cover the operation. Sets `principal` and `operation`.
 * Not an async function: most credentials are answered at once (anonymous, bearer, a cached password
 * check), and those requests then pay no promise of their own here.
 */
export function authMiddleware(auth: Authenticator, rules: readonly AccessRule[]): MiddlewareHandler<AppEnv> {
  return (c, next) => {
    const rule = ruleFor(rules, c.req.method, c.req.path);
    c.set("operation", rule.operation);
    if (rule.roles === "public") return next();
    // the peer's address (served by node:http); absent in-process, as in app.request()
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const authorize = (found: Principal | null) => {
      const principal = requirePrincipal(found);
      c.set("principal", principal);
      requireRole(rule, principal);
      return next();
    };
    // read only if a password check starts: most requests do not need it
    const found = auth.authenticate(c.req.header("authorization"), () => incoming?.socket.remoteAddress);
    return found instanceof Promise ? found.then(authorize) : authorize(found);
  };
}
