// Fixtures usable anywhere (tests, the bench, the soak). The vitest-bound ones have their own entry
// points: @ess/testing/context (a test file's Redis, store and queues) and @ess/testing/global-redis
// (the projects' globalSetup).
export * from "./dead-letters.js";
export * from "./processes.js";
export * from "./provision.js";
export * from "./recording-server.js";
export * from "./redis-binary.js";
export * from "./redis-server.js";
export * from "./sse.js";
