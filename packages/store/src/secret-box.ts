import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";

/** Version tag of a sealed value (the algorithm and key derivation below). */
const VERSION = "v1";
/** Fixed salt: every process derives the same key from the same key-encryption key. */
const SALT = "ess-callback-gateway/webhook-secrets/v1";

/**
 * Encrypts secrets at rest (webhook signing secrets in Redis) with AES-256-GCM under a key derived
 * with scrypt from the key-encryption key (WEBHOOK_SECRET). A sealed value is bound to its owner
 * (`aad`), so a ciphertext copied to another subscription does not open there.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** Derives the data key from the key-encryption key (scrypt: a passphrase-grade KEK is fine). */
  static fromKeyEncryptionKey(kek: string): SecretBox {
    return new SecretBox(scryptSync(kek, SALT, 32, { N: 16384, r: 8, p: 1 }));
  }

  /** `v1.<iv>.<tag>.<ciphertext>` (base64url) of plaintext, bound to aad. */
  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), ct]
      .map((x) => (typeof x === "string" ? x : x.toString("base64url")))
      .join(".");
  }

  /** The plaintext of a sealed value; throws when it was sealed under another key or for another aad. */
  open(sealed: string, aad: string): string {
    const [version, iv, tag, ct] = sealed.split(".");
    if (version !== VERSION || !iv || !tag || ct === undefined) throw new Error("not a sealed secret of this version");
    const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64url"));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(Buffer.from(tag, "base64url"));
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
  }
}
