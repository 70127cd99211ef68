import { describe, expect, it } from "vitest";
import { ConfigError, httpTimeouts, loadConfig } from "./index.js";

const base = { REDIS_URL: "redis://127.0.0.1:6379" };

describe("gateway HTTP settings", () => {
  it("defaults to timeouts in seconds, not minutes", () => {
    expect(httpTimeouts(loadConfig(base))).toEqual({
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      keepAliveTimeoutMs: 5000,
    });
  });

  it("refuses a headers timeout longer than the request timeout, naming both variables", () => {
    const config = loadConfig({ ...base, HTTP_HEADERS_TIMEOUT_SECONDS: "40", HTTP_REQUEST_TIMEOUT_SECONDS: "30" });
    expect(() => httpTimeouts(config)).toThrow(ConfigError);
    expect(() => httpTimeouts(config)).toThrow(
      /HTTP_HEADERS_TIMEOUT_SECONDS: must not exceed HTTP_REQUEST_TIMEOUT_SECONDS/,
    );
    expect(() => loadConfig({ ...base, HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: "0" })).toThrow(
      /HTTP_KEEP_ALIVE_TIMEOUT_SECONDS/,
    );
  });

  it.each([
    ["https://ess.example.com/", "https://ess.example.com"],
    ["http://10.0.0.5:8080/gw/", "http://10.0.0.5:8080/gw"],
  ])("takes PUBLIC_BASE_URL %s as %s", (given, taken) => {
    expect(loadConfig({ ...base, PUBLIC_BASE_URL: given }).PUBLIC_BASE_URL).toBe(taken);
  });

  it.each(["ess.example.com", "ftp://ess.example.com", "https://ess.example.com/?a=1", "https://ess.example.com/#x"])(
    "refuses PUBLIC_BASE_URL %s",
    (given) => {
      expect(() => loadConfig({ ...base, PUBLIC_BASE_URL: given })).toThrow(/PUBLIC_BASE_URL/);
    },
  );

  it("bounds the password checks", () => {
    const c = loadConfig(base);
    expect([c.AUTH_SCRYPT_CONCURRENCY, c.AUTH_SCRYPT_QUEUE, c.AUTH_FAILURE_CACHE_SECONDS]).toEqual([2, 64, 60]);
    expect([c.AUTH_SOURCE_CHECKS, c.AUTH_SOURCE_FAILURES]).toEqual([1, 10]);
    expect(() => loadConfig({ ...base, AUTH_SCRYPT_CONCURRENCY: "0" })).toThrow(/AUTH_SCRYPT_CONCURRENCY/);
  });
});
