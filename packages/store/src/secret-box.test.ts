import { describe, expect, it } from "vitest";
import { SecretBox } from "./secret-box.js";

const box = SecretBox.fromKeyEncryptionKey("a-key-encryption-key-of-the-tests");

describe("SecretBox (AES-256-GCM under a scrypt-derived key)", () => {
  it("round-trips; every seal has a fresh nonce; the plaintext is not in the sealed form", () => {
    const a = box.seal("whsec_c2VjcmV0", "42/abc/secret");
    const b = box.seal("whsec_c2VjcmV0", "42/abc/secret");
    expect(a).not.toBe(b);
    expect(a).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(a).not.toContain("c2VjcmV0");
    expect(box.open(a, "42/abc/secret")).toBe("whsec_c2VjcmV0");
    // another process with the same KEK opens it
    expect(SecretBox.fromKeyEncryptionKey("a-key-encryption-key-of-the-tests").open(b, "42/abc/secret")).toBe(
      "whsec_c2VjcmV0",
    );
  });

  it("refuses another key, another owner (aad), or a changed ciphertext", () => {
    const sealed = box.seal("whsec_c2VjcmV0", "42/abc/secret");
    expect(() => SecretBox.fromKeyEncryptionKey("another-key-encryption-key").open(sealed, "42/abc/secret")).toThrow();
    expect(() => box.open(sealed, "43/abc/secret")).toThrow();
    const [v, iv, tag, ct] = sealed.split(".") as [string, string, string, string];
    const flipped = Buffer.from(ct, "base64url");
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(() => box.open([v, iv, tag, flipped.toString("base64url")].join("."), "42/abc/secret")).toThrow();
    expect(() => box.open("plain-text", "42/abc/secret")).toThrow();
  });
});
