import { defineConfig } from "vitest/config";

// Three projects, run separately or together (`npm test` runs all):
//   unit         pure code, no Redis              *.test.ts beside the code
//   integration  real Redis, in-process app       *.int.test.ts beside the code
//   e2e          real processes over HTTP         test/**/*.test.ts
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["packages/*/src/**/*.int.test.ts", "apps/*/src/**/*.int.test.ts"],
          globalSetup: ["packages/testing/src/global-redis.ts"],
          testTimeout: 20000,
          hookTimeout: 30000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/**/*.test.ts"],
          globalSetup: ["packages/testing/src/global-redis.ts"],
          testTimeout: 120000,
          hookTimeout: 60000,
          // the suites start real processes: keep them from competing for the 2 cores
          fileParallelism: false,
        },
      },
    ],
  },
});
