import { createHash, timingSafeEqual } from "node:crypto";
import { ROLES, type Role } from "@ess/contract";
import { EssError } from "@ess/domain";
import {
  DUMMY_HASH,
  hashPassword,
  parseScrypt,
  parseTokenDigest,
  type ScryptHash,
  scrypt,
  tokenDigest,
} from "@ess/secrets";

/** The peer's address, or a function giving it (reading it from the socket is not free). */
export type PeerAddress = string | (() => string | undefined);

/** Who is calling: the credential's label (never its secret) and its roles. */
export interface Principal {
  name: string;
  roles: ReadonlySet<Role>;
  /** "basic", "bearer" or "anonymous" (no credentials configured, ALLOW_ANONYMOUS=true). */
  scheme: "basic" | "bearer" | "anonymous";
}

interface BasicUser {
  name: string;
  roles: Set<Role>;
  hash: ScryptHash;
}
interface BearerToken {
  name: string;
  roles: Set<Role>;
  digest: Buffer;
}

/** Thrown for a malformed AUTH_USERS / AUTH_TOKENS value; names the variable and the entry. */
export class CredentialsError extends Error {
  override name = "CredentialsError";
}

function parseEntries(variable: string, spec: string): { name: string; roles: Set<Role>; secret: string }[] {
  const out: { name: string; roles: Set<Role>; secret: string }[] = [];
  for (const raw of spec.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const first = entry.indexOf(":");
    const second = first < 0 ? -1 : entry.indexOf(":", first + 1);
    if (first <= 0 || second < 0) {
      throw new CredentialsError(`${variable}: entry ${out.length + 1} is not "name:role+role:secret"`);
    }
    const name = entry.slice(0, first);
    const roles = new Set<Role>();
    for (const r of entry.slice(first + 1, second).split("+")) {
      if (!(ROLES as readonly string[]).includes(r)) {
        throw new CredentialsError(`${variable}: entry '${name}' has unknown role '${r}' (use ${ROLES.join(", ")})`);
      }
      roles.add(r as Role);
    }
    const secret = entry.slice(second + 1);
    if (secret === "") throw new CredentialsError(`${variable}: entry '${name}' has an empty secret`);
    out.push({ name, roles, secret });
  }
  return out;
}

/** Digest of the presented credential: the key of the verified-credentials cache. */
function cacheKey(scheme: string, value: string): string {
  return createHash("sha256").update(`${scheme}\u0000${value}`).digest("base64");
}

const CACHE_LIMIT = 1000;
/** Wrong credentials remembered at most (oldest forgotten first). */
const FAILURE_CACHE_LIMIT = 10000;

/**
 * How the password checks are bounded (AUTH_SCRYPT_CONCURRENCY, AUTH_SCRYPT_QUEUE, AUTH_FAILURE_CACHE_SECONDS,
 * AUTH_SOURCE_CHECKS, AUTH_SOURCE_FAILURES).
 */
export interface PasswordCheckLimits {
  /** scrypt runs at once at most (each holds one of libuv's 4 pool threads for tens of ms). */
  concurrency: number;
  /** checks that may wait for a slot; one user's checks may take a quarter of it at most. */
  queue: number;
  /** a wrong credential is refused without a new scrypt for this long; 0: not remembered. */
  failureCacheMs: number;
  /** new password checks one source address may have in progress (running or waiting); 0: no limit. */
  sourceChecks: number;
  /** wrong passwords a source address may send per failureCacheMs before its new checks are refused; 0: no limit. */
  sourceFailures: number;
}

export const DEFAULT_PASSWORD_CHECK_LIMITS: PasswordCheckLimits = {
  concurrency: 2,
  queue: 64,
  failureCacheMs: 60000,
  sourceChecks: 1,
  sourceFailures: 10,
};

/** Source addresses tracked at most (the oldest forgotten first). */
const SOURCE_LIMIT = 10000;

/**
 * Per source address: the new password checks in progress, and the wrong passwords within a window.
 * A source at either bound has its next new check refused before any scrypt (429 with Retry-After), so
 * a flood from one address holds at most `maxChecks` of the gate's slots and stops after `maxFailures`,
 * and a first login from any other address finds a slot free.
 */
export class SourceLimiter {
  private readonly sources = new Map<string, { checks: number; failures: number; windowEnds: number }>();

  constructor(
    private readonly maxChecks: number,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  private entry(source: string, now: number) {
    let e = this.sources.get(source);
    if (e && e.windowEnds <= now) {
      // a new window: failures count afresh (checks still in progress stay counted)
      e.failures = 0;
      e.windowEnds = now + this.windowMs;
    }
    if (!e) {
      if (this.sources.size >= SOURCE_LIMIT) {
        for (const [k, v] of this.sources) {
          if (v.checks === 0) {
            this.sources.delete(k);
            break;
          }
        }
      }
      e = { checks: 0, failures: 0, windowEnds: now + this.windowMs };
      this.sources.set(source, e);
    }
    return e;
  }

  /** Admits one new check from `source` or throws RATE_LIMITED; the returned function ends it. */
  begin(source: string, now = Date.now()): (failed: boolean) => void {
    const e = this.entry(source, now);
    if (this.maxFailures > 0 && e.failures >= this.maxFailures) {
      throw new EssError("RATE_LIMITED", "too many wrong passwords from this address; retry later", {
        retryAfter: Math.max(1, Math.ceil((e.windowEnds - now) / 1000)),
      });
    }
    if (this.maxChecks > 0 && e.checks >= this.maxChecks) {
      throw new EssError("RATE_LIMITED", "a password check from this address is in progress; retry later", {
        retryAfter: 1,
      });
    }
    e.checks++;
    return (failed) => {
      e.checks--;
      if (failed) e.failures++;
    };
  }
}

/**
 * A semaphore for scrypt with a bounded wait queue that is fair between users: waiting checks are
 * kept per bucket (one per configured user name, one shared by every unknown name) and slots are
 * handed out round-robin over the buckets, so a flood of wrong passwords, for unknown names or for
 * one user, delays another user's login by about one scrypt per busy bucket, not by the whole flood.
 * Past its queue a check is refused at once (429 with Retry-After) instead of waiting.
 */
export class ScryptGate {
  private running = 0;
  private waiting = 0;
  /** waiting checks per bucket; Map order is the round-robin order */
  private readonly queues = new Map<string, (() => void)[]>();
  private readonly perBucket: number;

  constructor(
    private readonly concurrency: number,
    private readonly maxWaiting: number,
  ) {
    this.perBucket = Math.max(1, Math.ceil(maxWaiting / 4));
  }

  /** Checks in progress and waiting (for tests and metrics). */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting };
  }

  async run<T>(bucket: string, work: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      const queue = this.queues.get(bucket) ?? [];
      if (this.waiting >= this.maxWaiting || queue.length >= this.perBucket) {
        throw new EssError("RATE_LIMITED", "too many password checks are waiting; retry later", { retryAfter: 1 });
      }
      this.waiting++;
      // release() hands its slot over: `running` stays counted
      await new Promise<void>((resolve) => {
        queue.push(resolve);
        this.queues.set(bucket, queue);
      });
    }
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private release(): void {
    const next = this.queues.entries().next();
    if (next.done) {
      this.running--;
      return;
    }
    const [bucket, queue] = next.value;
    const resolve = queue.shift() as () => void;
    // the bucket goes to the back of the round
    this.queues.delete(bucket);
    if (queue.length > 0) this.queues.set(bucket, queue);
    this.waiting--;
    resolve();
  }
}

/**
 * Verifies credentials from configuration. Passwords are kept only as scrypt hashes (a plain
 * password in AUTH_USERS is hashed at startup); tokens only as sha256 digests. Comparisons are
 * constant-time. A verified Basic credential is remembered (by a digest of it) so that scrypt runs
 * once per credential, not once per callback: the hot path stays a hash and a map lookup, and never
 * waits behind a password check. Wrong credentials are bounded too: scrypt runs through a ScryptGate,
 * concurrent checks of one credential share one scrypt, and a credential that failed is refused
 * from memory for a while.
 */
export class Authenticator {
  private readonly verified = new Map<string, Principal>();
  /** digest of a wrong credential → when it may be checked again (ms) */
  private readonly failed = new Map<string, number>();
  /** checks in progress by credential digest: a burst of the same credential costs one scrypt */
  private readonly pending = new Map<string, Promise<Principal | null>>();
  private readonly gate: ScryptGate;
  private readonly sources: SourceLimiter | undefined;

  private constructor(
    private readonly users: Map<string, BasicUser>,
    private readonly tokens: BearerToken[],
    readonly anonymous: boolean,
    private readonly limits: PasswordCheckLimits,
  ) {
    this.gate = new ScryptGate(limits.concurrency, limits.queue);
    this.sources =
      limits.sourceChecks > 0 || limits.sourceFailures > 0
        ? new SourceLimiter(limits.sourceChecks, limits.sourceFailures, limits.failureCacheMs || 60000)
        : undefined;
  }

  /** Password checks running and waiting. */
  get passwordChecks(): { running: number; waiting: number } {
    return this.gate.load;
  }

  /** Builds from AUTH_USERS / AUTH_TOKENS; anonymous when both are empty and allowAnonymous is set. */
  static async fromConfig(cfg: {
    AUTH_USERS: string;
    AUTH_TOKENS: string;
    ALLOW_ANONYMOUS: boolean;
    AUTH_SCRYPT_CONCURRENCY?: number;
    AUTH_SCRYPT_QUEUE?: number;
    AUTH_FAILURE_CACHE_SECONDS?: number;
    AUTH_SOURCE_CHECKS?: number;
    AUTH_SOURCE_FAILURES?: number;
  }): Promise<Authenticator> {
    const users = new Map<string, BasicUser>();
    for (const e of parseEntries("AUTH_USERS", cfg.AUTH_USERS)) {
      if (users.has(e.name)) throw new CredentialsError(`AUTH_USERS: user '${e.name}' is listed twice`);
      let hash = parseScrypt(e.secret);
      if (!hash && e.secret.startsWith("scrypt$")) {
        throw new CredentialsError(`AUTH_USERS: entry '${e.name}' has a malformed scrypt hash`);
      }
      hash ??= parseScrypt(await hashPassword(e.secret));
      users.set(e.name, { name: e.name, roles: e.roles, hash: hash as ScryptHash });
    }
    const tokens: BearerToken[] = [];
    for (const e of parseEntries("AUTH_TOKENS", cfg.AUTH_TOKENS)) {
      const stored = parseTokenDigest(e.secret);
      if (!stored && e.secret.startsWith("sha256$")) {
        throw new CredentialsError(`AUTH_TOKENS: entry '${e.name}' has a malformed sha256 digest`);
      }
      tokens.push({ name: e.name, roles: e.roles, digest: stored ?? tokenDigest(e.secret) });
    }
    const none = users.size === 0 && tokens.length === 0;
    if (none && !cfg.ALLOW_ANONYMOUS) {
      throw new CredentialsError(
        "no credentials configured: set AUTH_USERS and/or AUTH_TOKENS, or ALLOW_ANONYMOUS=true for local use",
      );
    }
    const d = DEFAULT_PASSWORD_CHECK_LIMITS;
    return new Authenticator(users, tokens, none, {
      concurrency: cfg.AUTH_SCRYPT_CONCURRENCY ?? d.concurrency,
      queue: cfg.AUTH_SCRYPT_QUEUE ?? d.queue,
      failureCacheMs:
        cfg.AUTH_FAILURE_CACHE_SECONDS === undefined ? d.failureCacheMs : cfg.AUTH_FAILURE_CACHE_SECONDS * 1000,
      sourceChecks: cfg.AUTH_SOURCE_CHECKS ?? d.sourceChecks,
      sourceFailures: cfg.AUTH_SOURCE_FAILURES ?? d.sourceFailures,
    });
  }

  /**
   * The principal of an Authorization header; null when missing or wrong. Answered at once (no
   * promise) unless a password has to be checked. `source` (the peer's address, or a function giving
   * it, asked only when a new password check starts) bounds the new password checks per address;
   * without it only the global bounds apply.
   */
  authenticate(header: string | undefined, source?: PeerAddress): Principal | null | Promise<Principal | null> {
    if (this.anonymous) return ANONYMOUS;
    if (!header) return null;
    const space = header.indexOf(" ");
    if (space < 0) return null;
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === "bearer") return this.bearer(value);
    if (scheme === "basic") return this.basic(value, source);
    return null;
  }

  private bearer(token: string): Principal | null {
    const digest = tokenDigest(token);
    let found: BearerToken | undefined;
    // every token is compared, so the time taken does not tell which one matched
    for (const t of this.tokens) if (timingSafeEqual(t.digest, digest)) found = t;
    return found ? { name: found.name, roles: found.roles, scheme: "bearer" } : null;
  }

  /** A verified or recently refused credential is answered at once; a new one waits for its password check. */
  private basic(value: string, source: PeerAddress | undefined): Principal | null | Promise<Principal | null> {
    const key = cacheKey("basic", value);
    const hit = this.verified.get(key);
    if (hit) return hit;
    const until = this.failed.get(key);
    if (until !== undefined) {
      if (until > Date.now()) return null;
      this.failed.delete(key);
    }
    return this.check(key, value, source);
  }

  /** A password check, joined when one of the same credential is in progress; a refusal rejects. */
  private async check(key: string, value: string, peer: PeerAddress | undefined): Promise<Principal | null> {
    let check = this.pending.get(key);
    if (!check) {
      // joining a check already in progress costs nothing; a new one counts against its source
      const source = this.sources ? (typeof peer === "function" ? peer() : peer) : undefined;
      const end = source !== undefined ? this.sources?.begin(source) : undefined;
      check = this.checkPassword(key, value).then(
        (principal) => {
          end?.(principal === null);
          return principal;
        },
        (err: unknown) => {
          end?.(false);
          throw err;
        },
      );
      const settled = check.finally(() => this.pending.delete(key));
      this.pending.set(key, settled);
      return settled;
    }
    return check;
  }

  private async checkPassword(key: string, value: string): Promise<Principal | null> {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return null;
    const user = this.users.get(decoded.slice(0, colon));
    const password = decoded.slice(colon + 1);
    // an unknown user costs the same scrypt as a known one
    const hash = user?.hash ?? DUMMY_HASH;
    const key2 = await this.gate.run(user ? `user:${user.name}` : "unknown", () =>
      scrypt(password, hash.salt, { N: hash.N, r: hash.r, p: hash.p, keylen: hash.key.length }),
    );
    if (!user || !timingSafeEqual(key2, hash.key)) {
      this.rememberFailure(key);
      return null;
    }
    const principal: Principal = { name: user.name, roles: user.roles, scheme: "basic" };
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.set(key, principal);
    return principal;
  }

  private rememberFailure(key: string): void {
    if (this.limits.failureCacheMs <= 0) return;
    if (this.failed.size >= FAILURE_CACHE_LIMIT) {
      const oldest = this.failed.keys().next();
      if (!oldest.done) this.failed.delete(oldest.value);
    }
    this.failed.set(key, Date.now() + this.limits.failureCacheMs);
  }
}

const ANONYMOUS: Principal = { name: "anonymous", roles: new Set(ROLES), scheme: "anonymous" };
