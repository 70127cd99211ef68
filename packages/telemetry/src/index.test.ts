import { describe, expect, it } from "vitest";
import { startTracing, tracingEnabled } from "./index.js";

describe("tracingEnabled: off unless the OTEL_* variables ask for a trace exporter", () => {
  it.each([
    [{}, false],
    [{ OTEL_SERVICE_NAME: "x" }, false],
    [{ OTEL_TRACES_EXPORTER: "none" }, false],
    [{ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, false],
    [{ OTEL_TRACES_EXPORTER: "otlp" }, true],
    [{ OTEL_TRACES_EXPORTER: "console" }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" }, true],
    [{ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }, false],
    [{ OTEL_SDK_DISABLED: "TRUE", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, false],
    [{ OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "otlp" }, true],
  ])("%j → %s", (env, on) => {
    expect(tracingEnabled(env)).toBe(on);
  });

  it("startTracing without OTEL_* variables starts nothing", async () => {
    expect(await startTracing("ess-test", {})).toBeUndefined();
  });
});
