// Values the globalSetup hands to the tests (vitest's provide/inject), typed once.
declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export {};
