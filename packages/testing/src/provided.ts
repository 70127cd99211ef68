// Values the globalSetup hands to the tests (vitest's provide/inject), typed once.
declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** "host:port,..." of a Redis Cluster's nodes when the project runs on one (redisUrl is then its first node), else "" */
    redisClusterNodes: string;
  }
}

export {};
