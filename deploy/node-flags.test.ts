import { readFileSync } from "node:fs";
import { nodeFlags, ROOT } from "@ess/testing";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// node-flags.json is the one definition of the node flags of a production start; `npm start` and the
// tests' compiled processes read it. The starts that cannot read a file carry a copy, checked here.
const read = (path: string) => readFileSync(`${ROOT}${path}`, "utf8");
const APPS = ["gateway", "worker"] as const;

describe("the production node flags (node-flags.json)", () => {
  it("npm run start:gateway and start:worker pass them", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    for (const app of APPS) {
      expect(scripts[`start:${app}`]).toBe(["node", ...nodeFlags(app), `apps/${app}/dist/main.js`].join(" "));
    }
  });

  it("the image's default command (the gateway) and docker-compose.yml's services pass them", () => {
    const cmd = /^CMD (\[.*\])$/m.exec(read("Dockerfile"))?.[1];
    expect(JSON.parse(cmd ?? "null")).toEqual(["node", ...nodeFlags("gateway"), "apps/gateway/dist/main.js"]);
    const compose = parse(read("docker-compose.yml")) as { services: Record<string, { command?: unknown }> };
    const commands = Object.values(compose.services)
      .map((s) => s.command)
      .filter((c): c is string[] => Array.isArray(c) && c[0] === "node");
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const [, ...args] of commands) {
      const entry = args.pop();
      const app = /^apps\/(gateway|worker)\/dist\/main\.js$/.exec(entry ?? "")?.[1] as "gateway" | "worker";
      expect(app).toBeDefined();
      expect(args).toEqual(nodeFlags(app));
    }
  });
});
