import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { EssError } from "@ess/domain";
import type { Context, MiddlewareHandler } from "hono";
import type { Principal } from "../auth/authenticator.js";
import type { AppEnv } from "../context.js";

/** Form field and header that carry the CSRF token of a console POST. */
export const CSRF_FIELD = "_csrf";
export const CSRF_HEADER = "X-CSRF-Token";

/**
 * The Content-Security-Policy of a console page: everything from the gateway itself, nothing inline
 * but what carries this response's nonce (the console has none today: htmx's own indicator style is
 * turned off and lives in the style sheet), no framing, forms post only back to the gateway.
 */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'self' 'nonce-${nonce}'`,
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/** A fresh nonce per response: 128 random bits. */
export function newNonce(): string {
  return randomBytes(16).toString("base64");
}

/**
 * Sets the CSP (with a new nonce, kept in `c.var.nonce` for the renderer) and the other protective
 * headers on every console answer.
 */
export function securityHeaders(): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const nonce = newNonce();
    c.set("nonce", nonce);
    await next();
    c.header("Content-Security-Policy", contentSecurityPolicy(nonce));
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    c.header("X-Frame-Options", "DENY");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    c.header("Cross-Origin-Resource-Policy", "same-origin");
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "no-store");
  };
}

/** The console's Hono environment: the gateway's, plus this response's nonce and the page's title and section. */
export interface ConsoleEnv {
  Variables: AppEnv["Variables"] & { nonce: string; page: { title: string; section: string } };
}

/**
 * Issues and checks the CSRF tokens of console forms. A token is an HMAC of the principal (scheme and
 * name) under a key derived from the credential the browser presented (the Authorization header), so
 * it is tied to that credential, needs no server-side session, holds across gateway restarts and
 * replicas, and cannot be computed by a page that does not know the credential. Without credentials
 * (ALLOW_ANONYMOUS) the key is the process's own random one.
 */
export class CsrfTokens {
  private readonly processKey = randomBytes(32);

  /** The token of this request's principal and credential. */
  tokenFor(principal: Principal | undefined, authorization: string | undefined): string {
    const key =
      authorization && principal && principal.scheme !== "anonymous"
        ? createHash("sha256").update(`ess-console-csrf\u0000${authorization}`).digest()
        : this.processKey;
    const who = principal ? `${principal.scheme}\u0000${principal.name}` : "nobody";
    return createHmac("sha256", key).update(who).digest("base64url");
  }

  /** True when `presented` is this request's token (constant-time comparison). */
  verify(presented: string | undefined, principal: Principal | undefined, authorization: string | undefined): boolean {
    if (!presented) return false;
    const want = Buffer.from(this.tokenFor(principal, authorization));
    const got = Buffer.from(presented);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/**
 * The cross-site checks of a console POST, before its token: a browser's Sec-Fetch-Site must say
 * same-origin (or none: typed by the user), and an Origin header must name the host the request was
 * addressed to (its Host header: behind a TLS proxy the scheme differs) or PUBLIC_BASE_URL's. A request
 * failing them is refused with 403, whatever its token.
 */
export function checkSameOrigin(c: Context, publicBaseUrl: string | undefined): void {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    throw new EssError("FORBIDDEN", `cross-site request refused (Sec-Fetch-Site: ${site.slice(0, 20)})`);
  }
  const origin = c.req.header("origin");
  if (origin === undefined) return;
  const allowed = new Set([c.req.header("host") ?? new URL(c.req.url).host]);
  if (publicBaseUrl) allowed.add(new URL(publicBaseUrl).host);
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    // "null" (a sandboxed or opaque origin) or garbage: refused below
  }
  if (host === undefined || !allowed.has(host))
    throw new EssError("FORBIDDEN", `cross-origin request refused (Origin: ${origin.slice(0, 80)})`);
}
