export * from "./errors.js";
export * from "./ids.js";
export * from "./scheduler-transitions.js";
export * from "./states.js";
export * from "./statuses.js";
export * from "./transitions.js";
