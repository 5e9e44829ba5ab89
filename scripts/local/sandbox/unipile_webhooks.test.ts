// Fake Unipile, the LinkedIn side and its webhooks: acceptances (by id, by account, all pending,
// auto_accept, silent), new_relation's body and headers, retries on non-200 / no answer, replies
// and message_received, echoes of the account's own messages, the note's chat, disconnected
// accounts, accept_then_hang, fixture webhooks on --functions-url, reset and validation.

import assert from "node:assert/strict";
import { call, eventually, postJson, withSandbox } from "./test_util.ts";
import {
  ACC,
  api,
  apiForm,
  assertUnipileError,
  control,
  createHook,
  invite,
  JANE,
  type JsonHook,
  LI,
  MARIA,
  OMAR,
  SAM,
  SENDER,
  startChat,
  unipileState,
  withJsonHook,
} from "./unipile_test_util.ts";

const FAST = { webhook_delay_ms: 5, retry_delays_ms: [10, 20, 30, 40, 50], webhook_timeout_ms: 2_000 };
const FIXTURES = new URL("./fixtures.json", import.meta.url);

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("unipile: accepting an invitation makes a relation (newest first) and POSTs new_relation with the webhook's headers", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      const hookId = await createHook(sb, hook.url, "users", {
        headers: [{ key: "X-Webhook-Secret", value: "s3cret-for-tests-0123456789abcdef" }, {
          key: "X-Extra",
          value: "1",
        }],
      });
      await createHook(sb, hook.url + "-messaging", "messaging", { events: ["message_received"] });
      const inv = (await invite(sb, JANE)).body.invitation_id;
      const accepted = await control(sb, { accept: { invitation_id: inv } });
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      assert.deepEqual(accepted.body.seeded.accepted, [inv]);

      const rel = await api(sb, `/users/relations?account_id=${ACC}&limit=1`);
      assert.equal(rel.body.items[0].member_id, JANE);
      assert.ok(Date.now() - rel.body.items[0].created_at < 5_000);

      const [call1] = await hook.waitFor(1);
      assert.equal(call1.path, "/unipile-webhook");
      assert.equal(call1.headers.get("x-webhook-secret"), "s3cret-for-tests-0123456789abcdef");
      assert.equal(call1.headers.get("x-extra"), "1");
      assert.match(call1.headers.get("content-type")!, /^application\/json/);
      assert.deepEqual(call1.body, {
        event: "new_relation",
        account_id: ACC,
        account_type: "LINKEDIN",
        webhook_name: "test-users",
        user_full_name: "Jane Doe",
        user_provider_id: JANE,
        user_public_identifier: "jane-doe-duework",
        user_profile_url: "https://www.linkedin.com/in/jane-doe-duework/",
        user_picture_url: null,
      });
      assert.deepEqual(Object.keys(call1.body), [
        "event",
        "account_id",
        "account_type",
        "webhook_name",
        "user_full_name",
        "user_provider_id",
        "user_public_identifier",
        "user_profile_url",
        "user_picture_url",
      ]);

      await eventually(async () => (await unipileState(sb)).deliveries.length === 1, 3000, "delivery recorded");
      await sleepMs(30);
      const st = await unipileState(sb);
      // No note, so no chat and no message_received.
      assert.equal(hook.calls.length, 1);
      assert.equal(st.chats.length, 0);
      const d = st.deliveries[0];
      assert.deepEqual(
        [d.webhook_id, d.event, d.url, d.attempt, d.status, d.error, d.final],
        [hookId, "new_relation", hook.url, 1, 200, null, true],
      );
      assert.equal(st.counters.delivered, 1);
      assert.equal(st.invitations[0].status, "accepted");
      assert.equal(st.relations[ACC][0].provider_id, JANE);
      // The secret header is redacted in the snapshot.
      assert.deepEqual(st.webhooks[0].headers, [{ key: "X-Webhook-Secret", value: "[redacted]" }, {
        key: "X-Extra",
        value: "1",
      }]);
    });
  });
});

Deno.test("unipile: a non-200 answer is retried with the configured delays, at most 5 more times", async () => {
  await withSandbox(async (sb) => {
    // 500, 500, 500, then 200: four attempts.
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      await createHook(sb, hook.url, "users");
      await invite(sb, JANE);
      await control(sb, { accept: { account_id: ACC, provider_id: JANE } });
      await hook.waitFor(4);
      await eventually(async () => (await unipileState(sb)).deliveries.length === 4, 3000, "4 attempts recorded");
      const st = await unipileState(sb);
      assert.deepEqual(st.deliveries.map((d: { attempt: number; status: number }) => [d.attempt, d.status]), [
        [1, 500],
        [2, 500],
        [3, 500],
        [4, 200],
      ]);
      assert.deepEqual(st.deliveries.map((d: { final: boolean }) => d.final), [false, false, false, true]);
      // Each copy is the same event; the gaps grow (10, 20, 30 ms).
      assert.ok(hook.calls.every((c) => c.body.user_provider_id === JANE));
      const gaps = hook.calls.slice(1).map((c, i) => c.time - hook.calls[i].time);
      assert.ok(gaps[0] >= 9 && gaps[1] >= 19 && gaps[2] >= 29, JSON.stringify(gaps));
      assert.deepEqual([st.counters.delivered, st.counters.failed_attempts, st.counters.given_up], [1, 3, 0]);
      await sleepMs(80);
      assert.equal(hook.calls.length, 4);
    }, (i) => (i < 3 ? 500 : 200));
  });
  await withSandbox(async (sb) => {
    // Always 503: 1 + 5 attempts, then it gives up.
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      await createHook(sb, hook.url, "users");
      await invite(sb, OMAR);
      await control(sb, { accept: { account_id: ACC } });
      await hook.waitFor(6);
      await eventually(async () => (await unipileState(sb)).counters.given_up === 1, 3000, "given up");
      await sleepMs(100);
      assert.equal(hook.calls.length, 6);
      const st = await unipileState(sb);
      assert.deepEqual(st.deliveries.map((d: { attempt: number }) => d.attempt), [1, 2, 3, 4, 5, 6]);
      assert.equal(st.deliveries[5].final, true);
      assert.equal(st.counters.webhooks_pending, 0);
    }, () => 503);
  });
});

Deno.test("unipile: a receiver that answers 201 or not at all (timeout), or is unreachable, counts as failed", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, { ...FAST, webhook_timeout_ms: 50, retry_delays_ms: [10] });
      await createHook(sb, hook.url, "users");
      await invite(sb, JANE);
      await control(sb, { accept: { account_id: ACC } });
      await eventually(async () => (await unipileState(sb)).deliveries.length === 2, 3000, "2 attempts");
      const st = await unipileState(sb);
      assert.deepEqual(st.deliveries.map((d: { status: number | null }) => d.status), [201, null]);
      assert.match(st.deliveries[1].error, /no answer within 50 ms/);
    }, (i) => (i === 0 ? 201 : 0));
  });
  await withSandbox(async (sb) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    await control(sb, { ...FAST, retry_delays_ms: [5, 5] });
    await createHook(sb, `http://127.0.0.1:${deadPort}/gone`, "users");
    await invite(sb, JANE);
    await control(sb, { accept: { account_id: ACC } });
    await eventually(async () => (await unipileState(sb)).counters.given_up === 1, 3000, "given up");
    const st = await unipileState(sb);
    assert.deepEqual(st.deliveries.map((d: { status: number | null }) => d.status), [null, null, null]);
    assert.ok(st.deliveries.every((d: { error: string | null }) => typeof d.error === "string"));
  });
});

Deno.test("unipile: accept all pending invitations of an account; notify:false accepts silently; bad references change nothing", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      await createHook(sb, hook.url, "users");
      for (const id of [JANE, OMAR, LI]) await invite(sb, id);
      const maria = (await invite(sb, MARIA)).body.invitation_id;

      const silent = await control(sb, { accept: { invitation_id: maria, notify: false } });
      assert.deepEqual(silent.body.seeded.accepted, [maria]);
      const all = await control(sb, { accept: [{ account_id: ACC }, { account_id: ACC, notify: false }] });
      assert.equal(all.body.seeded.accepted.length, 3);
      await hook.waitFor(3);
      await sleepMs(40);
      assert.deepEqual(hook.calls.map((c) => c.body.user_provider_id).sort(), [JANE, LI, OMAR].sort());
      const rel = await api(sb, `/users/relations?account_id=${ACC}`);
      assert.deepEqual(rel.body.items.map((r: { member_id: string }) => r.member_id).slice(0, 4), [
        LI,
        OMAR,
        JANE,
        MARIA,
      ]);
      assert.deepEqual((await control(sb, { accept: { account_id: ACC } })).body.seeded.accepted, []);

      const before = JSON.stringify(await unipileState(sb));
      const bad = [
        [{ accept: { invitation_id: "123" } }, /accept\.invitation_id: unknown invitation/],
        [{ accept: { invitation_id: maria } }, /is accepted/],
        [{ accept: { account_id: "Nope" } }, /accept\.account_id: unknown account/],
        [{ accept: { account_id: ACC, provider_id: SAM } }, /no pending invitation/],
        [{ accept: {} }, /needs invitation_id or account_id/],
        [{
          accept: { account_id: ACC },
          accounts: [{ id: ACC, status: "DISCONNECTED" }],
          relations: [{ account_id: ACC, provider_id: "ACoAAUnknownMember000000000000000000000" }],
        }, /relations\.0\.provider_id: unknown user/],
        [
          { reply: { account_id: ACC, provider_id: "ACoAAUnknownMember000000000000000000000", text: "x" } },
          /reply\.provider_id: unknown user/,
        ],
        [{ auto_accept: { after_ms: 10, later: true } }, /auto_accept\.later: unknown field/],
        [{ colour: "blue" }, /colour: unknown field/],
        [{ retry_delays_ms: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] }, /retry_delays_ms/],
      ] as const;
      for (const [body, message] of bad) {
        const res = await control(sb, body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.match(res.body.message, message);
      }
      const after = await unipileState(sb);
      assert.equal(
        JSON.stringify({ ...after, deliveries: [] }),
        JSON.stringify({ ...JSON.parse(before), deliveries: [] }),
      );
    });
  });
});

Deno.test("unipile: auto_accept accepts every new invitation after after_ms (optionally silently, per account)", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, { ...FAST, auto_accept: { after_ms: 40 } });
      await createHook(sb, hook.url, "users");
      const t0 = Date.now();
      await invite(sb, JANE);
      await invite(sb, OMAR);
      assert.equal((await api(sb, `/users/relations?account_id=${ACC}&limit=1`)).body.items[0].member_id, SAM);
      await hook.waitFor(2);
      assert.ok(Date.now() - t0 >= 40);
      assert.deepEqual(hook.calls.map((c) => c.body.user_provider_id).sort(), [JANE, OMAR].sort());
      assertUnipileError(await invite(sb, JANE), 422, "already_connected");

      await control(sb, { auto_accept: { after_ms: 5, notify: false } });
      await invite(sb, LI);
      await eventually(async () => (await unipileState(sb)).accounts[0].relations === 4, 3000, "silent acceptance");
      await sleepMs(30);
      assert.equal(hook.calls.length, 2);

      await control(sb, { auto_accept: { after_ms: 5, account_ids: ["SomeOtherAccount"] } });
      await invite(sb, MARIA);
      await sleepMs(40);
      assert.equal(
        (await unipileState(sb)).invitations.find((i: { provider_id: string }) => i.provider_id === MARIA).status,
        "pending",
      );
      await control(sb, { auto_accept: null });
    });
  });
});

Deno.test("unipile: a prospect's reply is an is_sender 0 message and fires message_received to messaging webhooks", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, { ...FAST, echo_own_messages: false });
      await createHook(sb, hook.url, "messaging");
      await createHook(sb, hook.url + "-users", "users");
      const chatId = (await startChat(sb, SAM, "Hello Sam")).body.chat_id;
      const res = await control(sb, { reply: { account_id: ACC, provider_id: SAM, text: "Hi! Tell me more." } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { chat_id, message_id } = res.body.seeded.replies[0];
      assert.equal(chat_id, chatId);

      const [got] = await hook.waitFor(1);
      assert.equal(got.path, "/unipile-webhook");
      assert.equal(got.headers.get("x-webhook-secret"), "s3cret-for-tests-0123456789abcdef");
      const b = got.body;
      assert.deepEqual(Object.keys(b), [
        "account_id",
        "account_type",
        "event",
        "chat_id",
        "timestamp",
        "webhook_name",
        "message_id",
        "message",
        "sender",
        "attendees",
        "attachments",
      ]);
      assert.deepEqual([b.event, b.account_id, b.account_type, b.chat_id, b.message_id, b.message, b.webhook_name], [
        "message_received",
        ACC,
        "LINKEDIN",
        chatId,
        message_id,
        "Hi! Tell me more.",
        "test-messaging",
      ]);
      assert.match(b.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.equal(b.sender.attendee_provider_id, SAM);
      assert.equal(b.sender.attendee_name, "Sam Okafor");
      assert.equal(b.sender.attendee_profile_url, `https://www.linkedin.com/in/${SAM}/`);
      assert.equal(typeof b.sender.attendee_id, "string");
      assert.deepEqual(b.attendees.map((a: { attendee_provider_id: string }) => a.attendee_provider_id), [SAM]);

      const msgs = (await api(sb, `/chats/${chatId}/messages`)).body.items;
      assert.deepEqual(msgs.map((m: { text: string; is_sender: number }) => [m.text, m.is_sender]), [
        ["Hi! Tell me more.", 0],
        ["Hello Sam", 1],
      ]);
      assert.equal(msgs[0].id, message_id);

      // A reply from someone without a chat opens one.
      const fresh = await control(sb, { reply: [{ account_id: ACC, provider_id: JANE, text: "Saw your profile" }] });
      const janeChat = fresh.body.seeded.replies[0].chat_id;
      assert.notEqual(janeChat, chatId);
      const chats = (await api(sb, `/chats?account_id=${ACC}`)).body.items;
      assert.equal(chats[0].id, janeChat);
      assert.equal(chats[0].attendee_provider_id, JANE);
      await hook.waitFor(2);
      await sleepMs(30);
      assert.equal(hook.calls.length, 2); // no users webhook, no echo of "Hello Sam"
    });
  });
});

Deno.test("unipile: with echo_own_messages (default) the account's own sends fire message_received with the account as sender", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      assert.equal((await unipileState(sb)).options.echo_own_messages, true);
      await createHook(sb, hook.url, "messaging");
      const started = await startChat(sb, SAM, "Hello Sam");
      await apiForm(sb, `/chats/${started.body.chat_id}/messages`, [["text", "FU1"]]);
      await hook.waitFor(2);
      const [a, b] = hook.calls.map((c) => c.body);
      assert.deepEqual([a.message, a.message_id, a.sender.attendee_provider_id, a.sender.attendee_name], [
        "Hello Sam",
        started.body.message_id,
        SENDER,
        "Dana Duework",
      ]);
      assert.deepEqual([b.message, b.sender.attendee_provider_id], ["FU1", SENDER]);
      assert.deepEqual(a.attendees.map((x: { attendee_provider_id: string }) => x.attendee_provider_id), [SAM]);
    });
  });
});

Deno.test("unipile: accepting an invitation with a note opens a chat holding the note; POST /chats then reuses it", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      await createHook(sb, hook.url, "users");
      await createHook(sb, hook.url, "messaging");
      const inv = (await invite(sb, JANE, "Hi Jane, let's connect")).body.invitation_id;
      await control(sb, { accept: { invitation_id: inv } });
      await hook.waitFor(2);
      assert.deepEqual(hook.calls.map((c) => c.body.event).sort(), ["message_received", "new_relation"]);
      const echo = hook.calls.find((c) => c.body.event === "message_received")!.body;
      assert.deepEqual([echo.message, echo.sender.attendee_provider_id], ["Hi Jane, let's connect", SENDER]);

      const chats = (await api(sb, `/chats?account_id=${ACC}`)).body.items;
      assert.equal(chats.length, 1);
      assert.equal(chats[0].attendee_provider_id, JANE);
      const msgs = (await api(sb, `/chats/${chats[0].id}/messages`)).body.items;
      assert.deepEqual(msgs.map((m: { text: string; is_sender: number }) => [m.text, m.is_sender]), [[
        "Hi Jane, let's connect",
        1,
      ]]);
      const fu = await startChat(sb, JANE, "FU1");
      assert.equal(fu.body.chat_id, chats[0].id);

      await control(sb, { note_creates_chat: false });
      const inv2 = (await invite(sb, OMAR, "Hi Omar")).body.invitation_id;
      await control(sb, { accept: { invitation_id: inv2, notify: false } });
      assert.equal((await api(sb, `/chats?account_id=${ACC}`)).body.items.length, 1);
    });
  });
});

Deno.test("unipile: a disconnected account answers 401 everywhere and fires no webhooks; reconnecting restores it", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, FAST);
      await createHook(sb, hook.url, "users");
      await createHook(sb, hook.url, "messaging");
      const inv = (await invite(sb, JANE)).body.invitation_id;
      const chatId = (await startChat(sb, SAM, "hi")).body.chat_id;
      await hook.waitFor(1); // the echo of "hi"
      await control(sb, { accounts: [{ id: ACC, status: "DISCONNECTED" }] });
      for (
        const res of [
          await invite(sb, OMAR),
          await api(sb, `/users/jane-doe-duework?account_id=${ACC}`),
          await api(sb, `/users/relations?account_id=${ACC}`),
          await api(sb, `/users/invite/sent?account_id=${ACC}`),
          await startChat(sb, SAM, "x"),
          await apiForm(sb, `/chats/${chatId}/messages`, [["text", "x"]]),
          await api(sb, `/chats?account_id=${ACC}`),
        ]
      ) assertUnipileError(res, 401, "disconnected_account");
      await control(sb, {
        accept: { invitation_id: inv },
        reply: { account_id: ACC, provider_id: SAM, text: "hello?" },
      });
      await sleepMs(40);
      assert.equal(hook.calls.length, 1);
      await control(sb, { accounts: [{ id: ACC, status: "CREDENTIALS" }] });
      assertUnipileError(await invite(sb, OMAR), 401, "expired_credentials");
      await control(sb, { accounts: [{ id: ACC, status: "OK" }] });
      assert.equal((await invite(sb, OMAR)).status, 200);
    });
  });
});

Deno.test("unipile: accept_then_hang records the invitation / message at once and holds the answer back", async () => {
  await withSandbox(async (sb) => {
    await control(sb, { accept_then_hang: { times: 1, hang_ms: 5_000, on: ["invite"] } });
    const aborted = await fetchWithTimeout(sb, "/users/invite", { account_id: ACC, provider_id: JANE }, 150);
    assert.equal(aborted, "timeout");
    let st = await unipileState(sb);
    assert.equal(st.invitations.length, 1); // Unipile sent it; the caller never heard
    assert.equal(st.counters.hung, 1);
    assert.equal(st.options.accept_then_hang, null); // times used up
    // The retry is refused, and the sent list shows the invitation to reconcile with.
    assertUnipileError(await invite(sb, JANE), 422, "already_invited_recently");
    const sent = (await api(sb, `/users/invite/sent?account_id=${ACC}`)).body.items;
    assert.equal(sent[0].invited_user_id, JANE);
    assert.equal(sent[0].id, st.invitations[0].id);
    // Errors never hang and do not use up `times`.
    await control(sb, { accept_then_hang: { times: 1, hang_ms: 5_000 } });
    assertUnipileError(await invite(sb, SAM), 422, "already_connected");
    assert.equal((await unipileState(sb)).options.accept_then_hang.times, 1);

    // Messages: the message exists while the answer is held back (so a retry would double-send).
    await control(sb, { accept_then_hang: { times: 2, hang_ms: 5_000, on: ["start_chat", "send_message"] } });
    const form = new FormData();
    form.append("account_id", ACC);
    form.append("attendees_ids", SAM);
    form.append("text", "FU1");
    assert.equal(await fetchWithTimeout(sb, "/chats", form, 150), "timeout");
    st = await unipileState(sb);
    assert.equal(st.chats.length, 1);
    const chatId = st.chats[0].id;
    const msgForm = new FormData();
    msgForm.append("text", "FU2");
    assert.equal(await fetchWithTimeout(sb, `/chats/${chatId}/messages`, msgForm, 150), "timeout");
    const texts = (await api(sb, `/chats/${chatId}/messages`)).body.items.map((m: { text: string }) => m.text);
    assert.deepEqual(texts, ["FU2", "FU1"]);
    assert.equal((await unipileState(sb)).options.accept_then_hang, null);
    // Untouched endpoints answer at once.
    const t0 = Date.now();
    assert.equal((await invite(sb, OMAR)).status, 200);
    assert.ok(Date.now() - t0 < 1_000);
  });
});

/** POSTs (JSON for objects, multipart for FormData) and gives up after `ms`: "timeout" or the status. */
async function fetchWithTimeout(
  sb: { providers: { unipile: string } },
  path: string,
  body: Record<string, unknown> | FormData,
  ms: number,
): Promise<string | number> {
  const json = !(body instanceof FormData);
  try {
    const res = await fetch(`${sb.providers.unipile}/api/v1${path}`, {
      method: "POST",
      headers: { "x-api-key": "duework-local-unipile-api-key", ...(json && { "content-type": "application/json" }) },
      body: json ? JSON.stringify(body) : body,
      signal: AbortSignal.timeout(ms),
    });
    await res.body?.cancel();
    return res.status;
  } catch (e) {
    if ((e as Error).name === "TimeoutError") return "timeout";
    throw e;
  }
}

Deno.test("unipile: a hung answer and pending webhooks do not keep the sandbox from closing", async () => {
  const started = Date.now();
  let pending: Promise<unknown> | undefined;
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook) => {
      await control(sb, { webhook_delay_ms: 60_000, accept_then_hang: { hang_ms: 60_000 } });
      await createHook(sb, hook.url, "users");
      pending = invite(sb, JANE).catch(() => null);
      await eventually(async () => (await unipileState(sb)).invitations.length === 1, 3000, "invitation recorded");
      await control(sb, { accept_then_hang: null, accept: { account_id: ACC } });
      assert.equal((await unipileState(sb)).counters.webhooks_pending, 1);
    });
  });
  await pending; // answered (early) when the sandbox closed
  assert.ok(Date.now() - started < 5_000);
});

Deno.test("unipile: POST /__reset drops webhooks still pending from before and restores the fixture", async () => {
  await withSandbox(async (sb) => {
    await withJsonHook(async (hook: JsonHook) => {
      await control(sb, { webhook_delay_ms: 100, auto_accept: { after_ms: 5 } });
      await createHook(sb, hook.url, "users");
      await invite(sb, JANE);
      await eventually(async () => (await unipileState(sb)).accounts[0].relations === 2, 3000, "auto-accepted");
      assert.equal((await call(`${sb.controlUrl}/__reset`, { method: "POST" })).status, 200);
      await sleepMs(200);
      assert.equal(hook.calls.length, 0);
      const st = await unipileState(sb);
      assert.deepEqual(
        [st.invitations.length, st.webhooks.length, st.options.auto_accept, st.options.webhook_delay_ms],
        [0, 0, null, 50],
      );
      assert.equal(st.accounts[0].relations, 1);
    });
  });
});

Deno.test("unipile: fixture webhooks are registered on --functions-url with the fixture's X-Webhook-Secret", async () => {
  const fixture = JSON.parse(await Deno.readTextFile(FIXTURES)).unipile;
  const secret = fixture.webhooks[0].headers.find((h: { key: string }) => h.key === "X-Webhook-Secret").value;
  assert.equal(secret.length, 48);
  assert.ok(fixture.webhooks.every((w: { headers: { value: string }[] }) => w.headers[0].value === secret));
  // Without the flag: skipped, with a note.
  await withSandbox(async (sb) => {
    const st = await unipileState(sb);
    assert.equal(st.webhooks.length, 0);
    assert.equal(st.notes.length, 2);
    assert.match(st.notes[0], /--functions-url/);
  });
  await withJsonHook(async (hook) => {
    const functionsUrl = hook.url.replace(/\/unipile-webhook$/, "") + "/";
    const { startSandbox } = await import("./server.ts");
    const sb = await startSandbox({ controlPort: 0, providerPorts: {}, functionsUrl });
    try {
      const st = await unipileState(sb);
      assert.deepEqual(
        st.webhooks.map((
          w: { source: string; request_url: string; name: string },
        ) => [w.source, w.name, w.request_url]),
        [
          ["users", "duework", hook.url],
          ["messaging", "duework-messaging", hook.url],
        ],
      );
      assert.deepEqual(st.notes, []);
      await control(sb, { webhook_delay_ms: 1, echo_own_messages: false });
      await invite(sb, JANE);
      await control(sb, { accept: { account_id: ACC }, reply: { account_id: ACC, provider_id: SAM, text: "hi" } });
      await hook.waitFor(2);
      assert.deepEqual(hook.calls.map((c) => c.body.event).sort(), ["message_received", "new_relation"]);
      for (const c of hook.calls) assert.equal(c.headers.get("x-webhook-secret"), secret);
      assert.equal(hook.calls.find((c) => c.body.event === "new_relation")!.body.webhook_name, "duework");
      // The listing through the API shows the same two.
      assert.equal((await api(sb, "/webhooks")).body.items.length, 2);
      // Reset keeps them (same functions URL).
      await postJson(`${sb.controlUrl}/__reset`, {});
      assert.equal((await unipileState(sb)).webhooks.length, 2);
    } finally {
      await sb.close();
    }
  });
});
