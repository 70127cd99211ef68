export * from "./provision.js";
export * from "./redis-server.js";
