import { describe, expect, it } from "vitest";
import { loadConfig } from "./index.js";

const base = { REDIS_URL: "redis://127.0.0.1:6379" };

describe("operations variables", () => {
  it("defaults: no anonymous access, no credentials, backlog limit on, rate limit off, access log on", () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({
      ALLOW_ANONYMOUS: false,
      AUTH_USERS: "",
      AUTH_TOKENS: "",
      RATE_LIMIT_PER_SECOND: 0,
      BACKLOG_LIMIT: 100000,
      BACKLOG_CHECK_MS: 1000,
      RETRY_AFTER_SECONDS: 1,
      ACCESS_LOG: true,
      WORKER_METRICS_PORT: 9464,
      WORKER_METRICS_HOST: "127.0.0.1",
    });
  });

  it("parses booleans strictly and names a bad variable", () => {
    expect(loadConfig({ ...base, ALLOW_ANONYMOUS: "true", ACCESS_LOG: "0" })).toMatchObject({
      ALLOW_ANONYMOUS: true,
      ACCESS_LOG: false,
    });
    expect(() => loadConfig({ ...base, ALLOW_ANONYMOUS: "yes" })).toThrow(/ALLOW_ANONYMOUS/);
    expect(() => loadConfig({ ...base, BACKLOG_CHECK_MS: "5" })).toThrow(/BACKLOG_CHECK_MS/);
  });
});
