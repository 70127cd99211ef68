import type { EssError } from "@ess/domain";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import type { Principal } from "../auth/authenticator.js";
import { CsrfTokens, checkSameOrigin, contentSecurityPolicy } from "./security.js";

const ada: Principal = { name: "ada", roles: new Set(["admin"]), scheme: "basic" };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("console CSRF tokens", () => {
  it("are tied to the credential presented, stable across instances (replicas, restarts)", () => {
    const a = new CsrfTokens();
    const b = new CsrfTokens();
    const token = a.tokenFor(ada, basic("ada", "pw-1"));
    expect(b.tokenFor(ada, basic("ada", "pw-1"))).toBe(token);
    expect(a.verify(token, ada, basic("ada", "pw-1"))).toBe(true);
    // another password (a rotated credential), another principal, nothing: refused
    expect(a.verify(token, ada, basic("ada", "pw-2"))).toBe(false);
    expect(a.verify(token, { ...ada, name: "eve" }, basic("ada", "pw-1"))).toBe(false);
    expect(a.verify(undefined, ada, basic("ada", "pw-1"))).toBe(false);
    expect(a.verify(`${token}x`, ada, basic("ada", "pw-1"))).toBe(false);
  });

  it("without credentials, are the process's own", () => {
    const anon: Principal = { name: "anonymous", roles: new Set(["admin"]), scheme: "anonymous" };
    const a = new CsrfTokens();
    expect(a.verify(a.tokenFor(anon, undefined), anon, undefined)).toBe(true);
    expect(new CsrfTokens().verify(a.tokenFor(anon, undefined), anon, undefined)).toBe(false);
  });
});

describe("console same-origin check", () => {
  const app = new Hono();
  app.post("/x", (c) => {
    try {
      checkSameOrigin(c, "https://ess.example.com/gw");
      return c.text("ok");
    } catch (err) {
      return c.text((err as EssError).code, 403);
    }
  });
  const call = (headers: Record<string, string>) =>
    app.request("http://admin.local:8081/x", { method: "POST", headers: { host: "admin.local:8081", ...headers } });

  it.each([
    [{}, 200],
    [{ "sec-fetch-site": "same-origin" }, 200],
    [{ origin: "http://admin.local:8081" }, 200],
    [{ origin: "https://admin.local:8081" }, 200],
    [{ origin: "https://ess.example.com" }, 200],
    [{ "sec-fetch-site": "cross-site" }, 403],
    [{ "sec-fetch-site": "same-site" }, 403],
    [{ origin: "https://evil.example" }, 403],
    [{ origin: "null" }, 403],
    [{ origin: "http://admin.local:9999" }, 403],
  ] as const)("%o → %i", async (headers, status) => {
    expect((await call(headers)).status).toBe(status);
  });
});

describe("console CSP", () => {
  it("allows nothing inline but the response's nonce, and no framing", () => {
    const csp = contentSecurityPolicy("abc");
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self' 'nonce-abc'");
    expect(csp).toContain("style-src 'self' 'nonce-abc'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe");
  });
});
