import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// The workspace packages export their TypeScript sources under the "ess-source" condition and their
// compiled dist by default. Tests run the sources: Vite resolves with the condition, and the processes
// the suites start (node --import tsx …) inherit it through NODE_OPTIONS.
const SOURCE = "ess-source";
if (!process.env.NODE_OPTIONS?.includes(`--conditions=${SOURCE}`)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --conditions=${SOURCE}`.trim();
}

// Vitest's own server conditions (Vite's, without "module": some packages' "module" builds are not valid
// Node ESM), with the source condition first; the __vitest__ environment loads the global setups
const conditions = [SOURCE, ...defaultServerConditions.filter((c) => c !== "module")];
const sources = {
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  environments: { __vitest__: { resolve: { conditions } } },
};

// Three projects, run separately or together (`npm test` runs all):
//   unit         pure code, no Redis              *.test.ts beside the code
//   integration  real Redis, in-process app       *.int.test.ts beside the code
//   e2e          real processes over HTTP         test/**/*.test.ts
//   cluster      the callback, ordering, idempotency, dead-letter, scheduler and console-action suites again, on a
//                local Redis Cluster (3 masters + 3 replicas), and the cluster's own suite
export default defineConfig({
  test: {
    projects: [
      {
        ...sources,
        test: {
          name: "unit",
          include: [
            "packages/*/src/**/*.test.ts",
            "apps/*/src/**/*.test.ts",
            "deploy/**/*.test.ts",
            "bench/**/*.test.ts",
          ],
          exclude: ["**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        ...sources,
        test: {
          name: "integration",
          include: ["packages/*/src/**/*.int.test.ts", "apps/*/src/**/*.int.test.ts"],
          globalSetup: ["packages/testing/src/global-redis.ts"],
          testTimeout: 20000,
          hookTimeout: 30000,
        },
      },
      {
        ...sources,
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
        ...sources,
        test: {
          name: "cluster",
          include: [
            "test/cluster/**/*.test.ts",
            "test/e2e/callback-flow.test.ts",
            "test/e2e/ordering.test.ts",
            "test/e2e/dead-letters.test.ts",
            "test/e2e/scheduler.test.ts",
            "test/e2e/console-actions.test.ts",
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
