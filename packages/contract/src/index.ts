export * from "./cloudevents.js";
export * from "./errors.js";
export * from "./openapi.js";
export * from "./scheduler.js";
export * from "./schemas.js";
export * from "./webhook-policy.js";
export * from "./webhook-signing.js";
