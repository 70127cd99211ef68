export * from "./dlq.js";
export * from "./health.js";
export * from "./keys.js";
export * from "./queues.js";
export * from "./redis.js";
export * from "./scheduler.js";
export * from "./scripts.js";
export * from "./store.js";
