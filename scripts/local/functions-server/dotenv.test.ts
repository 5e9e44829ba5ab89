import assert from "node:assert/strict";
import { parseDotenv } from "./dotenv.ts";

Deno.test("dotenv: common forms", () => {
  const warnings: string[] = [];
  const env = parseDotenv(
    [
      "# comment",
      "",
      "PLAIN=value",
      "SPACED = spaced value  ",
      "EMPTY=",
      "INLINE=abc # comment",
      "HASH_IN_VALUE=abc#def",
      'DOUBLE="a\\nb \\"q\\" # kept"',
      "SINGLE='no $expansion \\n here'",
      "BACKTICK=`tick`",
      "export EXPORTED=yes",
      'MULTI="line1',
      'line2"',
      "URL=postgres://u:p@h:5432/db?x=1",
      "JSON={\"default\":\"sb_secret_x\"}",
      "not a valid line",
      "DUP=first",
      "DUP=second",
      "  INDENTED=ok",
      "WIN=crlf\r",
      "LAST=no newline at end",
    ].join("\n"),
    (w) => warnings.push(w),
  );
  assert.deepEqual(env, {
    PLAIN: "value",
    SPACED: "spaced value",
    EMPTY: "",
    INLINE: "abc",
    HASH_IN_VALUE: "abc#def",
    DOUBLE: 'a\nb "q" # kept',
    SINGLE: "no $expansion \\n here",
    BACKTICK: "tick",
    EXPORTED: "yes",
    MULTI: "line1\nline2",
    URL: "postgres://u:p@h:5432/db?x=1",
    JSON: '{"default":"sb_secret_x"}',
    DUP: "second",
    INDENTED: "ok",
    WIN: "crlf",
    LAST: "no newline at end",
  });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /line 16/);
});

Deno.test("dotenv: quoted value followed by a comment; unterminated quote", () => {
  assert.deepEqual(parseDotenv(`A="two words" # note\nB='x'   \nC="open`), {
    A: "two words",
    B: "x",
    C: '"open',
  });
});

Deno.test("dotenv: the fixture .env file", async () => {
  const text = await Deno.readTextFile(
    new URL("../../../tests/fixtures/supabase/functions/.env", import.meta.url),
  );
  const env = parseDotenv(text);
  assert.equal(env.DUEWORK_FIXTURE_GREETING, "hello");
  assert.equal(env.DUEWORK_FIXTURE_QUOTED, "two words");
  assert.equal(env.DUEWORK_FIXTURE_EXPORTED, "literal $value");
});
