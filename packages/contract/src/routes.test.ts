import { describe, expect, it } from "vitest";
import { z } from "zod";
import { API_ROUTES, declareRoute, GATEWAY_ROUTES, type RouteDeclaration, requestIdSchema } from "./routes.js";

const base = {
  method: "get",
  path: "/x/{id}",
  operationId: "x",
  operation: "x",
  summary: "x",
  responses: { 200: { description: "ok" } },
} as const;

describe("route declarations", () => {
  it("refuse a route without a declared role, with an empty role list or with an unknown role", () => {
    // @ts-expect-error roles is required
    expect(() => declareRoute({ ...base })).toThrow(/GET \/x\/\{id\} declares no roles/);
    // @ts-expect-error at least one role
    expect(() => declareRoute({ ...base, roles: [] })).toThrow(/declares no roles/);
    // @ts-expect-error not a role
    expect(() => declareRoute({ ...base, roles: ["root"] })).toThrow(/declares no roles/);
    expect(declareRoute({ ...base, roles: "public" }).roles).toBe("public");
    expect(declareRoute({ ...base, roles: ["job"] }).roles).toEqual(["job"]);
  });

  it("give every operation a unique operationId and every path parameter a schema", () => {
    const ids = GATEWAY_ROUTES.map((r) => r.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of GATEWAY_ROUTES) {
      const inPath = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(Object.keys(r.request?.params?.shape ?? {}).sort(), r.operationId).toEqual(inPath);
    }
  });

  it("let the routes of one path agree on the operation name and the roles", () => {
    const byPath = new Map<string, RouteDeclaration>();
    for (const r of GATEWAY_ROUTES) {
      const seen = byPath.get(r.path);
      if (seen) expect([r.operation, r.roles], r.operationId).toEqual([seen.operation, seen.roles]);
      byPath.set(r.path, r);
    }
  });

  it("declare every answer other than 2xx with the SimpleExceptionDetail body", () => {
    for (const r of Object.values(API_ROUTES) as RouteDeclaration[]) {
      for (const [code, answer] of Object.entries(r.responses)) {
        if (Number(code) < 300) continue;
        expect(answer.content?.["application/json"]?.schema, `${r.operationId} ${code}`).toBeInstanceOf(z.ZodType);
      }
    }
  });

  it("parse a request id to its canonical form and mark a bad one as INVALID_REQUEST_ID", () => {
    expect(requestIdSchema.parse("0042")).toBe("42");
    for (const bad of ["0", "abc", "", "9223372036854775808"]) {
      const issue = requestIdSchema.safeParse(bad).error?.issues[0];
      expect(issue?.code, bad).toBe("custom");
      expect((issue as { params?: unknown } | undefined)?.params).toEqual({ errorCode: "INVALID_REQUEST_ID" });
    }
  });
});
