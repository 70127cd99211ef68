/**
 * `npm run hash-secret -- password|token <secret>`: prints the hashed form AUTH_USERS / AUTH_TOKENS
 * take, so the plain secret need not sit in the environment.
 */
import { hashPassword, hashToken } from "@ess/secrets";

const [kind, secret] = process.argv.slice(2);
if ((kind !== "password" && kind !== "token") || !secret) {
  console.error("usage: npm run hash-secret -- password <password> | token <token>");
  process.exit(2);
}
console.log(kind === "password" ? await hashPassword(secret) : hashToken(secret));
