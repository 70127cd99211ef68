import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { classify } from "./failures.js";

class ReplyError extends Error {
  override name = "ReplyError";
}

describe("classify", () => {
  it.each([
    ["a closed connection", new Error("Connection is closed.")],
    ["a command timeout", new Error("Command timed out")],
    ["Redis loading its data", new ReplyError("LOADING Redis is loading the dataset in memory")],
    ["a read-only replica", new ReplyError("READONLY You can't write against a read only replica.")],
    ["anything unknown", new Error("something odd")],
  ])("%s is transient (retried with backoff)", (_, err) => {
    expect(classify(err)).toEqual({ kind: "transient" });
  });

  it.each([
    ["Redis refusing a script at maxmemory", new ReplyError("OOM command not allowed when used memory > 'maxmemory'.")],
    [
      "Redis refusing a write inside a script without flags",
      new ReplyError("OOM command not allowed when used memory > 'maxmemory'. script: 3c9d0f8e, on @user_script:12."),
    ],
  ])("%s is overload (retried with backoff, attempts not spent)", (_, err) => {
    expect(classify(err)).toEqual({ kind: "overload" });
  });

  it.each([
    ["a script error", new ReplyError("ERR user_script:51: Script attempted to access nonexistent global variable")],
    ["a wrong type", new ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")],
    ["a programming error", new TypeError("cannot read properties of undefined")],
    ["a domain error", new EssError("INTERNAL", "bad")],
  ])("%s is permanent (dead-lettered at once)", (_, err) => {
    expect(classify(err)).toEqual({ kind: "permanent", reason: "permanent-error" });
  });
});
