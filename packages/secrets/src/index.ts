import { createHash, randomBytes, scrypt as scryptCb } from "node:crypto";

/** Cost parameters of a new password hash. */
export const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

/** scrypt as a promise, with enough memory allowed for the given parameters. */
export function scrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number; keylen: number }) {
  return new Promise<Buffer>((resolve, reject) => {
    scryptCb(
      password,
      salt,
      params.keylen,
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** Hashes a password as `scrypt$N$r$p$<salt b64url>$<hash b64url>` (what AUTH_USERS takes). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

/** Hashes a bearer token as `sha256$<hex>` (what AUTH_TOKENS takes): tokens are long random strings. */
export function hashToken(token: string): string {
  return `sha256$${createHash("sha256").update(token).digest("hex")}`;
}

/** A parsed `scrypt$N$r$p$salt$hash` value. */
export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** Parses a `scrypt$N$r$p$salt$hash` value; null when the value is not one. */
export function parseScrypt(s: string): ScryptHash | null {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(s);
  if (!m) return null;
  return {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
    salt: Buffer.from(m[4] as string, "base64url"),
    key: Buffer.from(m[5] as string, "base64url"),
  };
}

const TOKEN_DIGEST = /^sha256\$([0-9a-f]{64})$/;

/** The digest of a `sha256$<hex>` value; null when the value is not one. */
export function parseTokenDigest(s: string): Buffer | null {
  const m = TOKEN_DIGEST.exec(s);
  return m ? Buffer.from(m[1] as string, "hex") : null;
}

/** The sha256 digest of a presented bearer token (what a stored digest is compared with). */
export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** A hash with the default parameters that matches no password: an unknown user costs the same scrypt. */
export const DUMMY_HASH: ScryptHash = {
  ...SCRYPT,
  salt: Buffer.alloc(16),
  key: Buffer.alloc(SCRYPT.keylen),
};
