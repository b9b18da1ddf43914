import { RE2JS } from "@bufbuild/re2";
import test from "ava";
import { matchPattern } from "../../services/shared/validation.ts";

const ID_PATTERNS = ["^[A-Za-z0-9_-]+$", "^[A-Za-z0-9_-]*$", "^[a-z0-9-]+$", "^[a-z0-9-]*$"];
const INPUTS = [
  "",
  "alice",
  "Alice_01-x",
  "a b",
  "a\nb",
  "alice\n",
  "\nalice",
  "é",
  "😀",
  "a/b",
  "a.b",
  "UPPER",
  "-",
  "_",
  "x".repeat(300),
  "a\u0000",
];

test("the contracts' id patterns match exactly what RE2 matches", (t) => {
  for (const pattern of ID_PATTERNS) {
    const re2 = RE2JS.compile(pattern);
    for (const s of INPUTS) {
      t.is(matchPattern(pattern, s), re2.test(s), `${pattern} against ${JSON.stringify(s)}`);
    }
  }
});

test("any other pattern is RE2's: its syntax, and what it refuses", (t) => {
  t.true(matchPattern("^(ab)+$", "abab"));
  t.false(matchPattern("^a.c$", "a\nc"));
  // A backreference is JavaScript syntax, not RE2's: refused, not run on the platform engine.
  t.throws(() => matchPattern("^(a)\\1$", "aa"));
});
