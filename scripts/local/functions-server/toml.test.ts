import assert from "node:assert/strict";
import { parseToml, TomlError } from "./toml.ts";

Deno.test("toml: supabase config.toml shapes", () => {
  const doc = parseToml(`
# comment line
project_id = "duework" # trailing comment

[api]
port = 54321
schemas = ["public", "graphql_public"]
extra_search_path = [
  "public",   # comment inside an array
  "extensions",
]

[functions.refresh-token]
verify_jwt = false
import_map = "./functions/refresh-token/deno.json"

[functions."quoted.name"]
verify_jwt = true

[edge_runtime.secrets]
KEY = "env(SOME_VAR)"
`);
  assert.equal(doc.project_id, "duework");
  assert.deepEqual(doc.api, {
    port: 54321,
    schemas: ["public", "graphql_public"],
    extra_search_path: ["public", "extensions"],
  });
  assert.deepEqual(doc.functions, {
    "refresh-token": { verify_jwt: false, import_map: "./functions/refresh-token/deno.json" },
    "quoted.name": { verify_jwt: true },
  });
  assert.deepEqual(doc.edge_runtime, { secrets: { KEY: "env(SOME_VAR)" } });
});

Deno.test("toml: strings", () => {
  const doc = parseToml([
    String.raw`basic = "tab\there \"q\" \u00e9 \\ done"`,
    String.raw`literal = 'C:\path\no\escape'`,
    `ml = """`,
    `line one`,
    `line two"""`,
    `ml_trim = """\\`,
    `    folded \\`,
    `    text"""`,
    `ml_lit = '''`,
    String.raw`raw \n kept'''`,
    `hash = "a # not a comment"`,
    `empty = ""`,
  ].join("\n"));
  assert.equal(doc.basic, 'tab\there "q" é \\ done');
  assert.equal(doc.literal, "C:\\path\\no\\escape");
  assert.equal(doc.ml, "line one\nline two");
  assert.equal(doc.ml_trim, "folded text");
  assert.equal(doc.ml_lit, "raw \\n kept");
  assert.equal(doc.hash, "a # not a comment");
  assert.equal(doc.empty, "");
});

Deno.test("toml: numbers, booleans, dates, inline tables, dotted keys, arrays of tables", () => {
  const doc = parseToml(`
int = +1_000
neg = -17
hex = 0xff
oct = 0o17
bin = 0b101
flt = 3.14
exp = 5e+2
inf1 = inf
t = true
f = false
date = 1979-05-27T07:32:00Z
local_date = 1979-05-27
point = { x = 1, y = "two", nested = { ok = true } }
a.b.c = 1
a.b.d = 2
nested_arr = [[1, 2], ["x"], []]

[[products]]
name = "Hammer"

[[products]]
name = "Nail"
[products.dims]
w = 1
`);
  assert.equal(doc.int, 1000);
  assert.equal(doc.neg, -17);
  assert.equal(doc.hex, 255);
  assert.equal(doc.oct, 15);
  assert.equal(doc.bin, 5);
  assert.equal(doc.flt, 3.14);
  assert.equal(doc.exp, 500);
  assert.equal(doc.inf1, Infinity);
  assert.equal(doc.t, true);
  assert.equal(doc.f, false);
  assert.equal(doc.date, "1979-05-27T07:32:00Z");
  assert.equal(doc.local_date, "1979-05-27");
  assert.deepEqual(doc.point, { x: 1, y: "two", nested: { ok: true } });
  assert.deepEqual(doc.a, { b: { c: 1, d: 2 } });
  assert.deepEqual(doc.nested_arr, [[1, 2], ["x"], []]);
  assert.deepEqual(doc.products, [{ name: "Hammer" }, { name: "Nail", dims: { w: 1 } }]);
});

Deno.test("toml: CRLF line endings and BOM", () => {
  const doc = parseToml("\uFEFF[functions.x]\r\nverify_jwt = false\r\n");
  assert.deepEqual(doc, { functions: { x: { verify_jwt: false } } });
});

Deno.test("toml: errors", () => {
  const bad = [
    "a = 1\na = 2", // duplicate key
    "[t]\n[t]", // table twice
    "a = ", // missing value
    'a = "unterminated', // unterminated string
    "a = [1, 2", // unterminated array
    "a = 1 b = 2", // junk after value
    "[t", // bad header
    "a = truee", // bad literal
    "x = { a = 1 }\nx.b = 2", // inline tables are closed
    'a = "\\q"', // invalid escape
  ];
  for (const src of bad) {
    assert.throws(() => parseToml(src), TomlError, `should reject: ${JSON.stringify(src)}`);
  }
  assert.throws(() => parseToml("ok = 1\n\nbroken ="), /line 3/);
});
