export * from "./errors.js";
export * from "./openapi.js";
export * from "./queries.js";
export * from "./responses.js";
export * from "./routes.js";
export * from "./scheduler.js";
export * from "./schemas.js";
export * from "./webhook-policy.js";
