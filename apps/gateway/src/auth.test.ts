import { declareRoute, type Role, type RouteDeclaration } from "@ess/contract";
import { hashPassword, hashToken } from "@ess/secrets";
import { describe, expect, it } from "vitest";
import { ACCESS_RULES, ADMIN_ACCESS_RULES, accessRules, allows, ruleFor } from "./auth/access-rules.js";
import { Authenticator, CredentialsError, type Principal } from "./auth/authenticator.js";
import { RateLimiter } from "./rate-limit.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const who = (...roles: Role[]): Principal => ({ name: "x", roles: new Set(roles), scheme: "bearer" });

describe("access rules derived from route declarations", () => {
  const route = (path: string, operation: string, roles: RouteDeclaration["roles"], extra = {}) =>
    declareRoute({
      method: "get",
      path,
      operationId: operation,
      operation,
      roles,
      summary: operation,
      responses: { 200: { description: "ok" } },
      ...extra,
    });

  it("one rule per path: {param} is one segment, literal paths win over parameterised ones, a subtree covers below", () => {
    const rules = accessRules([
      route("/items/{id}", "item", ["scheduler"]),
      route("/items/{id}", "item", ["scheduler"], { method: "delete" }),
      route("/items/export", "export", ["admin"]),
      route("/ui", "ui", "public", { subtree: true }),
    ]);
    expect(rules.map((r) => r.operation)).toEqual(["export", "ui", "item"]);
    expect(ruleFor(rules, "GET", "/items/export").operation).toBe("export");
    expect(ruleFor(rules, "DELETE", "/items/42").roles).toEqual(["scheduler"]);
    expect(ruleFor(rules, "GET", "/items/42/more").operation).toBe("other");
    expect(ruleFor(rules, "GET", "/ui/app.js").roles).toBe("public");
    expect(ruleFor(rules, "GET", "/uix").operation).toBe("other");
    // admin only: no role besides admin
    expect(ruleFor(rules, "GET", "/items/export").roles).toEqual([]);
  });

  it("refuses a declaration without roles, and routes of one path that disagree", () => {
    const bare = { ...route("/a", "a", "public") } as Partial<RouteDeclaration>;
    delete bare.roles;
    expect(() => accessRules([bare as RouteDeclaration])).toThrow(/GET \/a declares no roles/);
    expect(() => accessRules([route("/a", "a", ["job"]), route("/a", "a", ["scheduler"], { method: "post" })])).toThrow(
      /routes of \/a disagree/,
    );
  });
});

describe("access table", () => {
  const R = "/ess/rest/scheduler/v1/requests/42";
  const cases: [string, string, string, Role[]][] = [
    ["POST", `${R}/executionStatus`, "executionStatus", ["job"]],
    ["POST", `${R}/checkInCancelling`, "checkInCancelling", ["job"]],
    ["POST", `${R}/cancel`, "cancel", ["scheduler"]],
    ["POST", `${R}/forceCancel`, "forceCancel", ["scheduler"]],
    ["POST", `${R}/subscribe`, "subscribe", ["scheduler"]],
    ["DELETE", `${R}/subscribe`, "subscribe", ["scheduler"]],
    ["GET", R, "getRequest", ["scheduler"]],
    ["POST", "/gateway/v1/requests/42/executions", "register", ["scheduler"]],
    ["GET", "/gateway/v1/events", "events", ["scheduler"]],
    ["GET", "/gateway/v1/requests/42/subscriptions", "subscriptions", ["scheduler"]],
    ["GET", "/gateway/v1/requests/42/subscriptions/0123456789abcdef", "subscriptions", ["scheduler"]],
    ["GET", "/gateway/v1/requests/42/subscriptions/0123456789abcdef/deliveries", "subscriptions", ["scheduler"]],
    ["POST", "/gateway/v1/requests/42/subscriptions/0123456789abcdef/rotate", "subscriptions", ["scheduler"]],
    ["POST", "/gateway/v1/requests/42/subscriptions/0123456789abcdef/redeliver", "subscriptions", ["scheduler"]],
    ["GET", "/gateway/v1/requests/42/subscriptions/0123456789abcdef/other", "other", []],
  ];
  it.each(cases)("%s %s is %s for %j and admin only", (method, path, operation, roles) => {
    const rule = ruleFor(ACCESS_RULES, method, path);
    expect(rule.operation).toBe(operation);
    for (const r of ["job", "scheduler"] as Role[]) expect(allows(rule, who(r))).toBe(roles.includes(r));
    expect(allows(rule, who("admin"))).toBe(true);
    expect(allows(rule, undefined)).toBe(false);
  });

  it("probes and docs are public; an unknown path needs admin", () => {
    for (const p of ["/healthz", "/readyz", "/openapi.json", "/docs", "/docs/swagger-ui.css"]) {
      expect(allows(ruleFor(ACCESS_RULES, "GET", p), undefined)).toBe(true);
    }
    const other = ruleFor(ACCESS_RULES, "GET", "/nope");
    expect(other.operation).toBe("other");
    expect(allows(other, who("job", "scheduler"))).toBe(false);
    expect(allows(other, who("admin"))).toBe(true);
  });

  it("the admin listener needs admin for metrics and the dashboard, not for health", () => {
    expect(allows(ruleFor(ADMIN_ACCESS_RULES, "GET", "/healthz"), undefined)).toBe(true);
    expect(allows(ruleFor(ADMIN_ACCESS_RULES, "GET", "/readyz"), undefined)).toBe(true);
    for (const p of ["/metrics", "/admin/queues", "/admin/queues/api/queues", "/admin/dead-letters"]) {
      const rule = ruleFor(ADMIN_ACCESS_RULES, "GET", p);
      expect(allows(rule, who("scheduler", "job"))).toBe(false);
      expect(allows(rule, who("admin"))).toBe(true);
    }
  });
});

describe("Authenticator", () => {
  it("refuses to build with no credentials unless anonymous access is allowed", async () => {
    await expect(Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: false })).rejects.toThrow(
      CredentialsError,
    );
    const anon = await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "", ALLOW_ANONYMOUS: true });
    expect(anon.anonymous).toBe(true);
    expect((await anon.authenticate(undefined))?.roles.has("admin")).toBe(true);
  });

  it("configured credentials win over ALLOW_ANONYMOUS", async () => {
    const auth = await Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "t:job:tok", ALLOW_ANONYMOUS: true });
    expect(auth.anonymous).toBe(false);
    expect(await auth.authenticate(undefined)).toBeNull();
  });

  it("checks Basic passwords given as scrypt hashes or in plain, and bearer tokens given as sha256", async () => {
    const hash = await hashPassword("pw-one");
    const auth = await Authenticator.fromConfig({
      AUTH_USERS: `alice:scheduler+admin:${hash}, bob:job:plain:with:colons`,
      AUTH_TOKENS: `fleet:job:${hashToken("tok-1")},ops:admin:tok-2`,
      ALLOW_ANONYMOUS: false,
    });
    const alice = await auth.authenticate(basic("alice", "pw-one"));
    expect(alice?.name).toBe("alice");
    expect([...(alice?.roles ?? [])].sort()).toEqual(["admin", "scheduler"]);
    // a second call is answered from the verified cache, same principal
    expect(await auth.authenticate(basic("alice", "pw-one"))).toEqual(alice);
    expect(await auth.authenticate(basic("alice", "wrong"))).toBeNull();
    expect(await auth.authenticate(basic("nobody", "pw-one"))).toBeNull();
    expect((await auth.authenticate(basic("bob", "plain:with:colons")))?.name).toBe("bob");
    expect((await auth.authenticate("Bearer tok-1"))?.name).toBe("fleet");
    expect((await auth.authenticate("bearer tok-2"))?.roles.has("admin")).toBe(true);
    expect(await auth.authenticate("Bearer tok-3")).toBeNull();
    expect(await auth.authenticate("Digest abc")).toBeNull();
    expect(await auth.authenticate("garbage")).toBeNull();
  });

  it("names the variable and the entry of a malformed credential", async () => {
    await expect(
      Authenticator.fromConfig({ AUTH_USERS: "a:root:x", AUTH_TOKENS: "", ALLOW_ANONYMOUS: false }),
    ).rejects.toThrow(/AUTH_USERS: entry 'a' has unknown role 'root'/);
    await expect(
      Authenticator.fromConfig({ AUTH_USERS: "", AUTH_TOKENS: "nocolon", ALLOW_ANONYMOUS: false }),
    ).rejects.toThrow(/AUTH_TOKENS/);
    await expect(
      Authenticator.fromConfig({ AUTH_USERS: "a:job:scrypt$1$bad", AUTH_TOKENS: "", ALLOW_ANONYMOUS: false }),
    ).rejects.toThrow(/malformed scrypt/);
  });
});

describe("RateLimiter", () => {
  it("allows the burst, then refuses until tokens refill", () => {
    const rl = new RateLimiter(2, 3);
    const t = 1_000_000;
    expect([rl.take("a", t), rl.take("a", t), rl.take("a", t), rl.take("a", t)]).toEqual([true, true, true, false]);
    expect(rl.take("b", t)).toBe(true); // per credential
    expect(rl.take("a", t + 500)).toBe(true); // 0.5 s at 2/s = one token
    expect(rl.take("a", t + 500)).toBe(false);
  });
});
