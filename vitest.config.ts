import { defineConfig } from "vitest/config";

// Three projects, run separately or together (`npm test` runs all):
//   unit         pure code, no Redis              *.test.ts beside the code
//   integration  real Redis, in-process app       *.int.test.ts beside the code
//   e2e          real processes over HTTP         test/**/*.test.ts
//   cluster      the callback, ordering, idempotency, dead-letter and scheduler suites again, on a
//                local Redis Cluster (3 masters + 3 replicas), and the cluster's own suite
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "deploy/**/*.test.ts"],
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
          exclude: ["test/cluster/**", "**/node_modules/**"],
          globalSetup: ["packages/testing/src/global-redis.ts"],
          testTimeout: 120000,
          hookTimeout: 60000,
          // the suites start real processes: keep them from competing for the 2 cores
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "cluster",
          include: [
            "test/cluster/**/*.test.ts",
            "test/e2e/callback-flow.test.ts",
            "test/e2e/ordering.test.ts",
            "test/e2e/dead-letters.test.ts",
            "test/e2e/scheduler.test.ts",
            "apps/gateway/src/idempotency.int.test.ts",
          ],
          globalSetup: ["packages/testing/src/global-cluster.ts"],
          testTimeout: 120000,
          hookTimeout: 60000,
          fileParallelism: false,
        },
      },
    ],
  },
});
