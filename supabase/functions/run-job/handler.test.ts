// run-job against an in-memory tick store: which credentials run a tick, which requests never
// reach the store at all, and what comes back.

import assert from "node:assert/strict";
import { postgresError } from "../_shared/testing/fake_job_store.ts";
import { callWebhook, chunkedBody, type WebhookCall } from "../_shared/testing/webhook_call.ts";
import { CRON_SECRET_HEADER, MIN_CRON_SECRET_LENGTH, SHORT_CRON_SECRET_WARNING } from "./auth.ts";
import { createHandler, isUnknownJob, type TickStore, type TickSummary } from "./handler.ts";
import { MAX_BODY_BYTES } from "./job_name.ts";
import { envFrom } from "../_shared/env.ts";

const SECRET_KEY = "sb_secret_runjob0123456789abcdefgh";
const SERVICE_ROLE = "service-role-jwt-runjob-0123456789";
const CRON_SECRET = "cron_0123456789abcdef0123456789abcdef_duework"; // 44 characters
const DB_PASSWORD = "db-password-runjob-9876";
const ENV = {
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET_KEY }),
  SUPABASE_SERVICE_ROLE_KEY: SERVICE_ROLE,
  SUPABASE_DB_URL: `postgresql://postgres:${DB_PASSWORD}@db.internal:5432/postgres`,
  CRON_SECRET,
};
const BASE = "http://edge-runtime.internal:8081/run-job";

const summaryOf = (job: string): TickSummary => ({
  job,
  run_id: 41,
  discovered: 3,
  claimed: 3,
  dispatched_requests: 1,
  reaped: 0,
  queued: 0,
  batches_in_flight: 1,
  error: null,
});

interface Run extends WebhookCall {
  // deno-lint-ignore no-explicit-any
  json: any;
  /** The job names tick() was called with. */
  ticks: string[];
}

interface SendOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: BodyInit;
  env?: Record<string, string | undefined>;
  tick?: TickStore["tick"];
}

async function send(opts: SendOptions = {}): Promise<Run> {
  const ticks: string[] = [];
  const store: TickStore = {
    tick(job) {
      ticks.push(job);
      return opts.tick ? opts.tick(job) : Promise.resolve(summaryOf(job));
    },
  };
  const call = await callWebhook((d) => createHandler({ env: envFrom({ ...ENV, ...opts.env }), ...d }), store, {
    url: BASE + (opts.path ?? ""),
    method: opts.method,
    headers: opts.headers ?? {},
    body: opts.body ?? "",
  });
  const everything = [call.text, ...call.logs].join("\n");
  for (const secret of [SECRET_KEY, SERVICE_ROLE, CRON_SECRET, DB_PASSWORD, CRON_SECRET.slice(0, 20)]) {
    assert.equal(everything.includes(secret), false, "a secret leaked into the answer or the logs");
  }
  let json: unknown = null;
  try {
    json = JSON.parse(call.text);
  } catch { /* not JSON */ }
  return { ...call, json, ticks };
}

const postJob = (job: unknown, headers: Record<string, string>) =>
  send({ headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ job }) });

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const cronHeader = (secret: string) => ({ [CRON_SECRET_HEADER]: secret });
const KEY = { apikey: SECRET_KEY };

function assertRefused(r: Run, what: string) {
  assert.equal(r.status, 401, `${what}: ${r.text}`);
  assert.equal(r.json.error, "unauthorized", what);
  assert.equal(typeof r.json.message, "string", what);
  assert.equal(r.storeCalls, 0, `${what}: the store was asked for`);
  assert.deepEqual(r.ticks, [], `${what}: a tick ran`);
}

Deno.test("run-job: a secret key (apikey or Bearer) runs one tick of the job, 200 with its summary as it is", async () => {
  for (const headers of [KEY, bearer(SECRET_KEY), { apikey: SERVICE_ROLE }, bearer(SERVICE_ROLE)]) {
    const r = await postJob("youtube-token-refresh", headers);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, summaryOf("youtube-token-refresh"));
    assert.deepEqual(r.ticks, ["youtube-token-refresh"]);
    assert.match(r.logs.join("\n"), /run-job: youtube-token-refresh ticked \(secret_key\): run 41, discovered 3, claimed 3, 1 request\(s\) dispatched/);
  }
  // Whatever jobs.tick answers goes back unchanged, later fields included.
  const extra = { ...summaryOf("a"), error: "job is paused: discovered only, nothing dispatched", later_field: [1, 2] };
  const passed = await send({ headers: KEY, path: "/a", tick: () => Promise.resolve(extra) });
  assert.deepEqual(passed.json, extra);
  assert.match(passed.logs.join("\n"), /; job is paused/);
});

Deno.test("run-job: CRON_SECRET via x-cron-secret or Authorization: Bearer runs the tick", async () => {
  const viaHeader = await postJob("booking-reminders", cronHeader(CRON_SECRET));
  assert.equal(viaHeader.status, 200, viaHeader.text);
  assert.deepEqual(viaHeader.ticks, ["booking-reminders"]);
  assert.match(viaHeader.logs.join("\n"), /\(cron_secret\)/);
  const viaBearer = await postJob("booking-reminders", bearer(CRON_SECRET));
  assert.equal(viaBearer.status, 200, viaBearer.text);
  assert.deepEqual(viaBearer.ticks, ["booking-reminders"]);
  // Vercel Cron: GET ?job= with Authorization: Bearer <CRON_SECRET>.
  const vercel = await send({ method: "GET", path: "?job=booking-reminders", headers: bearer(CRON_SECRET) });
  assert.equal(vercel.status, 200, vercel.text);
  assert.deepEqual(vercel.json, summaryOf("booking-reminders"));
  // Surrounding whitespace in the header or the setting does not matter.
  const padded = await postJob("booking-reminders", cronHeader(` ${CRON_SECRET} `));
  assert.equal(padded.status, 200);
  const paddedSetting = await send({ path: "/x", headers: cronHeader(CRON_SECRET), env: { CRON_SECRET: `  ${CRON_SECRET}\n` } });
  assert.equal(paddedSetting.status, 200);
});

Deno.test("run-job: a wrong, short, empty or missing secret → 401 and no database call at all", async () => {
  const wrong = [
    CRON_SECRET.slice(0, MIN_CRON_SECRET_LENGTH - 1), // a 31-character prefix of the real one
    CRON_SECRET.slice(0, -1),
    CRON_SECRET + "x",
    CRON_SECRET.toUpperCase(),
    "x".repeat(CRON_SECRET.length),
    SECRET_KEY.slice(0, -1),
  ];
  for (const secret of wrong) {
    assertRefused(await postJob("youtube-token-refresh", cronHeader(secret)), `x-cron-secret ${secret.slice(0, 6)}…`);
    assertRefused(await postJob("youtube-token-refresh", bearer(secret)), `Bearer ${secret.slice(0, 6)}…`);
    assertRefused(await postJob("youtube-token-refresh", { apikey: secret }), `apikey ${secret.slice(0, 6)}…`);
  }
  assertRefused(await postJob("youtube-token-refresh", cronHeader("")), "empty x-cron-secret");
  assertRefused(await postJob("youtube-token-refresh", { authorization: "Bearer " }), "empty Bearer");
  assertRefused(await postJob("youtube-token-refresh", { apikey: "" }), "empty apikey");
  assertRefused(await postJob("youtube-token-refresh", {}), "no credential");
  // CRON_SECRET is not an apikey, and Basic is not Bearer.
  assertRefused(await postJob("youtube-token-refresh", { apikey: CRON_SECRET }), "CRON_SECRET as apikey");
  assertRefused(await postJob("youtube-token-refresh", { authorization: `Basic ${CRON_SECRET}` }), "Basic");
  // Without CRON_SECRET set, only the secret keys open it.
  assertRefused(await send({ path: "/x", headers: cronHeader(CRON_SECRET), env: { CRON_SECRET: undefined } }), "CRON_SECRET unset");
  assert.equal((await send({ path: "/x", headers: KEY, env: { CRON_SECRET: undefined } })).status, 200);
  // Nothing configured at all: nothing opens it, not even an empty value.
  const bare = { SUPABASE_SECRET_KEYS: undefined, SUPABASE_SERVICE_ROLE_KEY: undefined, CRON_SECRET: undefined };
  assertRefused(await send({ path: "/x", headers: { apikey: "", [CRON_SECRET_HEADER]: "" }, env: bare }), "nothing configured");
});

Deno.test("run-job: the credential is checked first: a refused request is answered 401 whatever its method, size or body", async () => {
  assertRefused(await send({ method: "PUT", path: "/x", headers: cronHeader("nope") }), "PUT");
  assertRefused(await send({ method: "DELETE", path: "/x" }), "DELETE");
  assertRefused(await send({ body: "{not json", headers: cronHeader("nope") }), "bad JSON");
  assertRefused(await send({ body: chunkedBody("x".repeat(MAX_BODY_BYTES * 2)) }), "huge body");
  assertRefused(await send({ path: "/Not_A_Name!" }), "bad name");
});

Deno.test("run-job: a configured CRON_SECRET shorter than 32 characters is ignored (one warning without the value)", async () => {
  const short = CRON_SECRET.slice(0, 20);
  for (const headers of [cronHeader(short), bearer(short)]) {
    const r = await send({ path: "/x", headers, env: { CRON_SECRET: short } });
    assertRefused(r, "short CRON_SECRET sent exactly");
    assert.deepEqual(r.logs, [SHORT_CRON_SECRET_WARNING]);
  }
  // The secret keys still work, and one handler warns once, however many requests it serves.
  const logs: string[] = [];
  const handler = createHandler({
    env: envFrom({ ...ENV, CRON_SECRET: short }),
    store: () => ({ tick: (job) => Promise.resolve(summaryOf(job)) }),
    log: (l) => logs.push(l),
  });
  for (let i = 0; i < 3; i++) await (await handler(new Request(`${BASE}/x`, { method: "POST", headers: cronHeader(short) }))).body?.cancel();
  const ok = await handler(new Request(`${BASE}/x`, { method: "POST", headers: KEY }));
  assert.equal(ok.status, 200);
  assert.equal(logs.filter((l) => l === SHORT_CRON_SECRET_WARNING).length, 1);
  assert.match(SHORT_CRON_SECRET_WARNING, /CRON_SECRET is shorter than 32 characters and is ignored/);
  // Exactly 32 characters is enough.
  const exactly = CRON_SECRET.slice(0, MIN_CRON_SECRET_LENGTH);
  const r = await send({ path: "/x", headers: cronHeader(exactly), env: { CRON_SECRET: exactly } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.logs.filter((l) => l === SHORT_CRON_SECRET_WARNING), []);
});

Deno.test("run-job: the job comes from the body, ?job= or the path; the same name twice is fine, two names are not", async () => {
  const ok = [
    { path: "", body: '{"job":"outreach-outbox"}' },
    { path: "?job=outreach-outbox", body: "" },
    { path: "/outreach-outbox", body: "" },
    { path: "/outreach-outbox/", body: "" },
    { path: "/outreach-outbox?job=outreach-outbox", body: '{"job":"outreach-outbox"}' },
    { path: "?job=outreach-outbox", body: "{}" },
    { path: "?job=outreach-outbox&other=ignored", body: " \n" },
  ];
  for (const c of ok) {
    const r = await send({ path: c.path, body: c.body, headers: KEY });
    assert.equal(r.status, 200, `${c.path} ${c.body}: ${r.text}`);
    assert.deepEqual(r.ticks, ["outreach-outbox"]);
  }
  for (const path of ["/outreach-outbox", "?job=outreach-outbox"]) {
    const get = await send({ method: "GET", path, headers: KEY });
    assert.equal(get.status, 200, get.text);
    assert.deepEqual(get.ticks, ["outreach-outbox"]);
  }
  const conflicts: [string, string][] = [
    ["/a?job=b", ""],
    ["/a", '{"job":"b"}'],
    ["?job=a", '{"job":"b"}'],
    ["?job=a&job=b", ""],
  ];
  for (const [path, body] of conflicts) {
    const r = await send({ path, body, headers: KEY });
    assert.equal(r.status, 400, `${path} ${body}`);
    assert.deepEqual(Object.keys(r.json).sort(), ["error", "field", "message"]);
    assert.equal(r.json.error, "invalid_request");
    assert.equal(r.json.field, "job");
    assert.match(r.json.message, /two different job names: "a" \((path|query)\) and "b" \((query|body)\)/);
    assert.equal(r.storeCalls, 0);
  }
});

Deno.test("run-job: 400 naming the field for a missing or malformed name and a bad body; nothing runs", async () => {
  const cases: { path?: string; body?: string; field: string; message: RegExp }[] = [
    { field: "job", message: /required/ },
    { body: "{}", field: "job", message: /required/ },
    { body: "{not json", field: "body", message: /not JSON/ },
    { body: "[]", field: "body", message: /JSON object/ },
    { body: '"youtube-token-refresh"', field: "body", message: /JSON object/ },
    { body: "null", field: "body", message: /JSON object/ },
    { body: '{"job":7}', field: "job", message: /string/ },
    { body: '{"job":null}', field: "job", message: /string/ },
    { body: '{"job":"a","wait":true}', field: "wait", message: /unknown field/ },
    { body: '{"name":"a"}', field: "name", message: /unknown field/ },
    { body: '{"job":""}', field: "job", message: /must match/ },
    { body: '{"job":"Youtube"}', field: "job", message: /must match/ },
    { body: '{"job":"-leading-dash"}', field: "job", message: /must match/ },
    { body: `{"job":"${"a".repeat(64)}"}`, field: "job", message: /must match/ },
    { path: "?job=", field: "job", message: /must match/ },
    { path: "?job=a%20b", field: "job", message: /must match/ },
    { path: "/jobs:tick", field: "job", message: /must match/ },
    { path: "/a/b", field: "job", message: /one segment at most/ },
    { path: "/%E0%A4%A", field: "job", message: /percent-encoding/ },
  ];
  for (const c of cases) {
    const r = await send({ path: c.path, body: c.body, headers: KEY });
    assert.equal(r.status, 400, `${c.path ?? ""} ${c.body ?? ""}: ${r.text}`);
    assert.equal(r.json.error, "invalid_request");
    assert.equal(r.json.field, c.field, `${c.path ?? ""} ${c.body ?? ""}`);
    assert.match(r.json.message, c.message, `${c.path ?? ""} ${c.body ?? ""}`);
    assert.equal(r.storeCalls, 0);
  }
  // The longest name jobs.job allows is accepted.
  const longest = "a".repeat(63);
  assert.equal((await send({ path: `/${longest}`, headers: KEY })).status, 200);
  // A long value is not echoed back whole.
  const long = await send({ path: `/a?job=${"b".repeat(1000)}`, headers: KEY });
  assert.equal(long.status, 400);
  assert.ok(long.text.length < 400, long.text);
});

Deno.test("run-job: 405 for other methods, 413 for a body over 16 KiB; nothing runs", async () => {
  for (const method of ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]) {
    const r = await send({ method, path: "/x", headers: KEY });
    assert.equal(r.status, 405, method);
    assert.equal(r.storeCalls, 0);
    if (method !== "HEAD") assert.equal(r.json.error, "method_not_allowed");
  }
  const big = JSON.stringify({ job: "x", pad: "p".repeat(MAX_BODY_BYTES) });
  const declared = await send({ headers: { ...KEY, "content-length": String(MAX_BODY_BYTES + 1) }, body: "{}" });
  assert.equal(declared.status, 413);
  assert.equal(declared.json.error, "payload_too_large");
  const streamed = await send({ headers: KEY, body: chunkedBody(big) });
  assert.equal(streamed.status, 413);
  assert.equal(declared.storeCalls + streamed.storeCalls, 0);
  // Just under the limit is read (and then refused for its unknown field).
  const under = await send({ headers: KEY, body: JSON.stringify({ job: "x", p: "p".repeat(MAX_BODY_BYTES - 40) }) });
  assert.equal(under.status, 400);
  assert.equal(under.json.field, "p");
});

Deno.test("run-job: an unknown job → 404 naming it", async () => {
  const r = await send({
    path: "/no-such-job",
    headers: cronHeader(CRON_SECRET),
    tick: (job) => Promise.reject(postgresError("P0002", `jobs.tick: no job named ${job}`)),
  });
  assert.equal(r.status, 404, r.text);
  assert.deepEqual(r.json, { error: "unknown_job", job: "no-such-job", message: "no job named no-such-job" });
  assert.deepEqual(r.ticks, ["no-such-job"]);
  // Another no_data_found (a missing Vault secret, say) is not an unknown job.
  assert.equal(isUnknownJob(postgresError("P0002", 'Vault secret "project_url" is missing')), false);
  assert.equal(isUnknownJob(postgresError("P0001", "jobs.tick: no job named x")), false);
  assert.equal(isUnknownJob("jobs.tick: no job named x"), false);
});

Deno.test("run-job: a database error → 503 without internals; secrets and the connection string stay out of the log", async () => {
  const errors = [
    postgresError("57P01", `terminating connection: ${ENV.SUPABASE_DB_URL} (${CRON_SECRET})`),
    Object.assign(new Error(`connect ECONNREFUSED db.internal:5432 password ${DB_PASSWORD}`), { code: "ECONNREFUSED" }),
    new Error("SUPABASE_DB_URL is not set"),
  ];
  for (const err of errors) {
    const r = await send({ path: "/x", headers: KEY, tick: () => Promise.reject(err) });
    assert.equal(r.status, 503, r.text);
    assert.deepEqual(r.json, { error: "database_unavailable", message: "the tick could not run; try again later" });
    assert.match(r.logs.join("\n"), /run-job: the tick of x failed: database error/);
  }
  const first = await send({ path: "/x", headers: KEY, tick: () => Promise.reject(errors[0]) });
  assert.match(first.logs.join("\n"), /SQLSTATE 57P01\): terminating connection: \[redacted\] \(\[redacted\]\)/);
  // The store itself failing to start (no SUPABASE_DB_URL) is answered the same way.
  const noStore = await callWebhook((d) => createHandler({ env: envFrom(ENV), ...d, store: () => { throw new Error("SUPABASE_DB_URL is not set"); } }), null, {
    url: `${BASE}/x`,
    headers: KEY,
    body: "",
  });
  assert.equal(noStore.status, 503);
});
