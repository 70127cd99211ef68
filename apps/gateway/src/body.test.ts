import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeJsonError, findJsonError } from "./body.js";

const parses = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

/** JSON text with a few characters inserted, deleted or replaced: mostly invalid, sometimes not. */
const mutated = fc
  .tuple(
    fc.json(),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom("insert", "delete", "replace"),
        fc.constantFrom(...'{}[]",:\\ 0-.eE+tfnu\u0001x'),
      ),
      { maxLength: 3 },
    ),
  )
  .map(([json, edits]) => {
    let s = json;
    for (const [at, kind, ch] of edits) {
      const i = at % (s.length + 1);
      if (kind === "insert") s = s.slice(0, i) + ch + s.slice(i);
      else if (kind === "delete") s = s.slice(0, i) + s.slice(i + 1);
      else s = s.slice(0, i) + ch + s.slice(i + 1);
    }
    return s;
  });

describe("findJsonError", () => {
  it("agrees with JSON.parse on what is valid", () => {
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string(), fc.json()), (text) => {
        expect(findJsonError(text) === null).toBe(parses(text));
      }),
      { numRuns: 5000 },
    );
  });

  it("survives nesting far deeper than the call stack", () => {
    expect(findJsonError("[".repeat(200000))).toEqual({ at: 200000, what: "unexpected end of input" });
    expect(findJsonError(`${"[".repeat(100000)}${"]".repeat(100000)}`)).toBeNull();
  });

  it.each([
    ['{"status": ', "unexpected end of input at line 1, column 12 (character 12)"],
    ['{"a" 1}', "expected ':' at line 1, column 6 (character 6)"],
    ['{"a": 1,}', "expected a property name at line 1, column 9 (character 9)"],
    ["[1 2]", "expected ',' or ']' at line 1, column 4 (character 4)"],
    ['{"handle": "secret\\q"}', "invalid escape in a string at line 1, column 19 (character 19)"],
    ['"abc', "unterminated string at line 1, column 5 (character 5)"],
    ["{}\n{}", "unexpected data after the JSON value at line 2, column 1 (character 4)"],
    ["01", "unexpected data after the JSON value at line 1, column 2 (character 2)"],
  ])("describes %j by position only", (text, expected) => {
    expect(describeJsonError(text)).toBe(expected);
  });
});
