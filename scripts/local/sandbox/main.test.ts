// The CLI: one ready line with the real origins, one log line per request
// without secrets, clean exit on SIGTERM.

import assert from "node:assert/strict";
import { PROVIDER_NAMES } from "./types.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

async function readLine(
  reader: ReadableStreamDefaultReader<string>,
  buf: { text: string },
): Promise<string> {
  while (!buf.text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stdout closed; got ${JSON.stringify(buf.text)}`);
    buf.text += value;
  }
  const i = buf.text.indexOf("\n");
  const line = buf.text.slice(0, i);
  buf.text = buf.text.slice(i + 1);
  return line;
}

Deno.test("main: prints the ready line, logs requests without secrets, exits on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--control-port", "0", "--port", "google_oauth=0"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const buf = { text: "" };
  try {
    const ready = await readLine(reader, buf);
    const m = /^sandbox ready (\{.*\})$/.exec(ready);
    assert.ok(m, ready);
    const info = JSON.parse(m[1]);
    assert.deepEqual(Object.keys(info), ["control_url", "providers"]);
    assert.deepEqual(Object.keys(info.providers), [...PROVIDER_NAMES]);

    const health = await fetch(`${info.control_url}/__health`);
    assert.deepEqual(await health.json(), { ok: true });
    const res = await fetch(`${info.providers.google_oauth}/token?access_token=leak-q`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: "1//demo-refresh-youtube-1",
        client_id: "duework-local-client.apps.googleusercontent.com",
        client_secret: "duework-local-secret",
      }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();

    const line = await readLine(reader, buf);
    assert.match(line, /^POST google_oauth \/token 200 [\d.]+ms$/);
    assert.equal(/leak|secret|demo-refresh/.test(line), false);

    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
  } finally {
    await reader.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  }
});

Deno.test("main: --functions-url points the fixture's webhooks at the functions", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--quiet", "--functions-url", "http://127.0.0.1:9/functions/v1/"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const ready = await readLine(reader, { text: "" });
    const info = JSON.parse(ready.replace(/^sandbox ready /, ""));
    const res = await fetch(`${info.control_url}/__state/unipile`);
    const { state } = await res.json();
    assert.deepEqual(state.webhooks.map((w: { request_url: string }) => w.request_url), [
      "http://127.0.0.1:9/functions/v1/unipile-webhook",
      "http://127.0.0.1:9/functions/v1/unipile-webhook",
    ]);
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
  } finally {
    await reader.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  }
});

Deno.test("main: --functions-url must be an http(s) URL", async () => {
  for (const bad of ["not-a-url", "ftp://example.test/functions/v1"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "--functions-url", bad],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2, bad);
    assert.match(new TextDecoder().decode(out.stderr), /--functions-url/);
  }
});

Deno.test("main: bad flags exit 2 with usage", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--port", "myspace=1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /usage:/);
});
