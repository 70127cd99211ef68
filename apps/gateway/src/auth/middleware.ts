import type { IncomingMessage } from "node:http";
import { EssError } from "@ess/domain";
import type { Context, MiddlewareHandler, Next } from "hono";
import type { AppEnv } from "../context.js";
import { type AccessRule, allows, ruleFor } from "./access-rules.js";
import type { Authenticator, Principal } from "./authenticator.js";

/** The WWW-Authenticate challenge of a 401: both schemes, whichever kinds are configured. */
export const CHALLENGE = 'Basic realm="ess-gateway", charset="UTF-8", Bearer realm="ess-gateway"';

/** 401 without a principal, 403 without the role; else the request goes on. */
function authorize(c: Context<AppEnv>, rule: AccessRule, principal: Principal | null, next: Next) {
  if (!principal) {
    c.header("WWW-Authenticate", CHALLENGE);
    throw new EssError("UNAUTHENTICATED", "valid credentials are required (HTTP Basic or Bearer)");
  }
  c.set("principal", principal);
  if (!allows(rule, principal)) {
    const need = rule.roles !== "public" && rule.roles.length > 0 ? rule.roles.join(" or ") : "admin";
    throw new EssError("FORBIDDEN", `'${principal.name}' lacks the role for ${rule.operation} (needs ${need})`);
  }
  return next();
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
    // read only if a password check starts: most requests do not need it
    const found = auth.authenticate(c.req.header("authorization"), () => incoming?.socket.remoteAddress);
    return found instanceof Promise
      ? found.then((principal) => authorize(c, rule, principal, next))
      : authorize(c, rule, found, next);
  };
}
