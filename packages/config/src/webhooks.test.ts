import { describe, expect, it } from "vitest";
import { loadConfig } from "./index.js";

const base = { REDIS_URL: "redis://127.0.0.1:6379" };

describe("WEBHOOK_ALLOW_HOSTS", () => {
  it("is empty by default: the address policy refuses every inward target", () => {
    expect(loadConfig(base).WEBHOOK_ALLOW_HOSTS).toBe("");
  });

  it("takes hostnames, *.suffixes, IP addresses and CIDR networks", () => {
    const spec = "hooks.internal, *.svc.cluster.local,127.0.0.1,10.20.0.0/16,fd00:1::/64";
    expect(loadConfig({ ...base, WEBHOOK_ALLOW_HOSTS: spec }).WEBHOOK_ALLOW_HOSTS).toBe(spec);
  });

  it("a bad item stops the process with a message naming the variable and the item", () => {
    expect(() => loadConfig({ ...base, WEBHOOK_ALLOW_HOSTS: "127.0.0.1,10.0.0.0/40" })).toThrow(
      /WEBHOOK_ALLOW_HOSTS: "10\.0\.0\.0\/40" is not a hostname, IP address or CIDR network/,
    );
  });
});
