export * from "./errors.js";
export * from "./scheduler.js";
export * from "./schemas.js";
