import type { Role } from "@ess/contract";
import { describe, expect, it } from "vitest";
import type { Principal } from "../auth/authenticator.js";
import { type ConsoleAction, can, consoleRole } from "./roles.js";

const principal = (...roles: Role[]): Principal => ({ name: "p", roles: new Set(roles), scheme: "bearer" });

describe("console roles", () => {
  it("maps credentials onto viewer, operator and admin; the highest wins", () => {
    expect(consoleRole(principal("viewer"))).toBe("viewer");
    expect(consoleRole(principal("operator"))).toBe("operator");
    expect(consoleRole(principal("scheduler"))).toBe("operator");
    expect(consoleRole(principal("admin"))).toBe("admin");
    expect(consoleRole(principal("viewer", "operator"))).toBe("operator");
    expect(consoleRole(principal("job", "admin"))).toBe("admin");
    expect(consoleRole(principal("job"))).toBeUndefined();
    expect(consoleRole(undefined)).toBeUndefined();
  });

  it("viewers read; operators take single actions; only admins purge and run bulk actions", () => {
    const table: Record<ConsoleAction, [viewer: boolean, operator: boolean, admin: boolean]> = {
      read: [true, true, true],
      requestAction: [false, true, true],
      replayDeadLetter: [false, true, true],
      purgeDeadLetter: [false, false, true],
      bulk: [false, false, true],
    };
    for (const [action, [v, o, a]] of Object.entries(table) as [ConsoleAction, boolean[]][]) {
      expect([can("viewer", action), can("operator", action), can("admin", action)], action).toEqual([v, o, a]);
      expect(can(undefined, action)).toBe(false);
    }
  });
});
