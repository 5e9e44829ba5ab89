// Fake Unipile API v1, the endpoints: auth, profiles, invitations (JSON only, note length,
// duplicates, relations, limit_exceeded, withdrawals), sent invitations and relations with cursor
// paging, chats and messages (multipart only, relations only unless InMail, lists newest first),
// the webhook registry, disconnected accounts, faults and the request log's redaction.

import assert from "node:assert/strict";
import { call, postJson, withSandbox } from "./test_util.ts";
import {
  ACC,
  api,
  apiForm,
  apiJson,
  assertUnipileError,
  control,
  CREDENTIALS,
  DISCONNECTED,
  invite,
  JANE,
  KEY,
  LI,
  makeUsers,
  MARIA,
  OMAR,
  SAM,
  SENDER,
  startChat,
  unipileState,
} from "./unipile_test_util.ts";

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

Deno.test("unipile: X-API-KEY is required; errors use the {title, detail, type, status} envelope", async () => {
  await withSandbox(async (sb) => {
    assertUnipileError(await api(sb, `/users/relations?account_id=${ACC}`, {}, null), 401, "unauthorized");
    assertUnipileError(await api(sb, `/users/relations?account_id=${ACC}`, {}, "wrong"), 401, "unauthorized");
    // Not one of the account-disconnection types a client would treat as "reconnect the account".
    const bad = await api(sb, `/users/relations?account_id=${ACC}`, {}, "wrong");
    assert.ok(
      !["errors/disconnected_account", "errors/invalid_credentials", "errors/expired_credentials"].includes(
        bad.body.type,
      ),
    );
    assertUnipileError(await call(`${sb.providers.unipile}/v1/users/relations`), 404, "resource_not_found");
    assertUnipileError(await api(sb, "/nothing/here"), 404, "resource_not_found");
    assertUnipileError(await api(sb, "/users/relations", { method: "POST" }), 405, "method_not_allowed");
    // The fixture's key can be joined by more.
    await control(sb, { api_keys: ["second-key"] });
    assert.equal((await api(sb, `/users/relations?account_id=${ACC}`, {}, "second-key")).status, 200);
  });
});

Deno.test("unipile: GET /users/{identifier} by public identifier or provider id; 404 for an unknown member", async () => {
  await withSandbox(async (sb) => {
    const byPublic = await api(sb, `/users/jane-doe-duework?account_id=${ACC}`);
    assert.equal(byPublic.status, 200);
    const p = byPublic.body;
    assert.equal(p.object, "UserProfile");
    assert.equal(p.provider, "LINKEDIN");
    assert.equal(p.provider_id, JANE);
    assert.equal(p.public_identifier, "jane-doe-duework");
    assert.equal(p.first_name, "Jane");
    assert.equal(p.last_name, "Doe");
    assert.equal(p.headline, "Head of Operations at Northwind");
    assert.deepEqual(p.websites, []);
    assert.equal(p.network_distance, "SECOND_DEGREE");
    assert.equal(p.is_relationship, false);
    assert.equal(p.public_profile_url, "https://www.linkedin.com/in/jane-doe-duework/");
    assert.equal("work_experience" in p, false);

    const byProvider = await api(sb, `/users/${JANE}?account_id=${ACC}&linkedin_sections=experience`);
    assert.equal(byProvider.body.public_identifier, "jane-doe-duework");
    assert.deepEqual(byProvider.body.work_experience, [
      { position: "Head of Operations at Northwind", company: "Northwind", current: true, start: null, end: null },
    ]);
    const relation = await api(sb, `/users/sam-okafor-duework?account_id=${ACC}`);
    assert.equal(relation.body.network_distance, "FIRST_DEGREE");
    assert.equal(relation.body.is_relationship, true);
    // Unicode names and URL-encoded identifiers.
    assert.equal(
      (await api(sb, `/users/${encodeURIComponent("maria-garcia-duework")}?account_id=${ACC}`)).body.first_name,
      "María",
    );

    await invite(sb, JANE);
    assert.deepEqual((await api(sb, `/users/${JANE}?account_id=${ACC}`)).body.invitation, {
      type: "SENT",
      status: "PENDING",
    });

    // LinkedIn vanity names ignore case; the answer carries the canonical one.
    assert.equal(
      (await api(sb, `/users/Jane-Doe-Duework?account_id=${ACC}`)).body.public_identifier,
      "jane-doe-duework",
    );
    assertUnipileError(await api(sb, `/users/nobody-here?account_id=${ACC}`), 404, "resource_not_found");
    assertUnipileError(await api(sb, "/users/jane-doe-duework"), 400, "invalid_parameters");
    assertUnipileError(await api(sb, "/users/jane-doe-duework?account_id=nope"), 404, "resource_not_found");
    assertUnipileError(
      await api(sb, `/users/jane-doe-duework?account_id=${DISCONNECTED}`),
      401,
      "disconnected_account",
    );
    assertUnipileError(await api(sb, `/users/jane-doe-duework?account_id=${CREDENTIALS}`), 401, "expired_credentials");
  });
});

Deno.test("unipile: POST /users/invite is JSON only and answers 200 UserInvitationSent", async () => {
  await withSandbox(async (sb) => {
    const res = await invite(sb, JANE, "Hi Jane, shall we connect?");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body), ["object", "invitation_id"]); // no usage below 80 % of the limit
    assert.equal(res.body.object, "UserInvitationSent");
    assert.match(res.body.invitation_id, /^\d{19}$/);

    const form = new URLSearchParams({ account_id: ACC, provider_id: OMAR });
    assertUnipileError(
      await api(sb, "/users/invite", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form,
      }),
      400,
      "invalid_parameters",
    );
    assertUnipileError(
      await apiForm(sb, "/users/invite", [["account_id", ACC], ["provider_id", OMAR]]),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await apiJson(sb, "/users/invite", { account_id: ACC }), 400, "invalid_parameters");
    assertUnipileError(await apiJson(sb, "/users/invite", { provider_id: OMAR }), 400, "invalid_parameters");
    assertUnipileError(await apiJson(sb, "/users/invite", [ACC, OMAR]), 400, "invalid_parameters");

    const st = await unipileState(sb);
    assert.equal(st.invitations.length, 1);
    assert.deepEqual(
      [st.invitations[0].provider_id, st.invitations[0].message, st.invitations[0].status],
      [JANE, "Hi Jane, shall we connect?", "pending"],
    );
    assert.equal(st.accounts[0].invites_sent, 1);
  });
});

Deno.test("unipile: invite refusals — note > 300 characters, already invited, already connected, unknown member, account state", async () => {
  await withSandbox(async (sb) => {
    assertUnipileError(await invite(sb, JANE, "x".repeat(301)), 400, "too_many_characters");
    // 300 characters (code points: 150 emoji are 300 UTF-16 units and still only 150 characters).
    assert.equal((await invite(sb, JANE, "é".repeat(300))).status, 200);
    assert.equal((await invite(sb, OMAR, "👋".repeat(150))).status, 200);

    assertUnipileError(await invite(sb, JANE), 422, "already_invited_recently");
    assertUnipileError(await invite(sb, JANE, "again"), 422, "already_invited_recently");
    assertUnipileError(await invite(sb, SAM), 422, "already_connected");
    assertUnipileError(await invite(sb, "ACoAAUnknownMember000000000000000000000"), 422, "invalid_recipient");
    // A public identifier is not an invitee id: the provider id must be looked up first.
    assertUnipileError(await invite(sb, "li-wei-duework"), 422, "invalid_recipient");
    assertUnipileError(await invite(sb, LI, undefined, DISCONNECTED), 401, "disconnected_account");
    assertUnipileError(await invite(sb, LI, undefined, CREDENTIALS), 401, "expired_credentials");
    assertUnipileError(await invite(sb, LI, undefined, "NoSuchAccount"), 404, "resource_not_found");
    // Refusals send nothing and use no quota.
    assert.equal((await unipileState(sb)).accounts[0].invites_sent, 2);
  });
});

Deno.test("unipile: limit_exceeded once an account has sent invite_limit invitations; usage near the limit", async () => {
  await withSandbox(async (sb) => {
    await control(sb, { accounts: [{ id: ACC, invite_limit: 5 }] });
    const answers = [];
    for (const id of [JANE, OMAR, LI, MARIA]) answers.push((await invite(sb, id)).body);
    assert.equal("usage" in answers[2], false); // 3/5 = 60 %
    assert.equal(answers[3].usage, 80); // 4/5: the threshold is crossed
    await control(sb, { users: makeUsers(2) });
    const [a, b] = makeUsers(2).map((u) => u.provider_id);
    assert.equal((await invite(sb, a)).body.usage, 100);
    assertUnipileError(await invite(sb, b), 422, "limit_exceeded");
    assert.equal((await unipileState(sb)).accounts[0].invites_sent, 5);
    // A new "week": the count is reset.
    await control(sb, { accounts: [{ id: ACC, invites_sent: 0 }] });
    assert.equal((await invite(sb, b)).status, 200);
    await control(sb, { accounts: [{ id: ACC, invite_limit: null }] });
  });
});

Deno.test("unipile: GET /users/invite/sent lists pending invitations newest first, cursor paged; DELETE withdraws", async () => {
  await withSandbox(async (sb) => {
    const ids: string[] = [];
    for (const [id, note] of [[JANE, "n1"], [OMAR, null], [LI, "n3"], [MARIA, null]] as const) {
      ids.push((await invite(sb, id, note ?? undefined)).body.invitation_id);
    }
    const first = await api(sb, `/users/invite/sent?account_id=${ACC}&limit=3`);
    assert.equal(first.status, 200);
    assert.equal(first.body.object, "InvitationList");
    assert.deepEqual(first.body.items.map((i: { id: string }) => i.id), [ids[3], ids[2], ids[1]]);
    assert.match(first.body.cursor, BASE64);
    const item = first.body.items[1];
    assert.equal(item.object, "InvitationSent");
    assert.equal(item.invited_user_id, LI);
    assert.equal(item.invited_user_public_id, "li-wei-duework");
    assert.equal(item.invited_user, "Li Wei");
    assert.equal(item.invitation_text, "n3");
    assert.match(item.parsed_datetime, ISO_MS);
    assert.equal(item.date, "Sent today");
    assert.equal(item.specifics.provider, "LINKEDIN");
    assert.equal(item.inviter.inviter_id, SENDER);
    assert.equal(first.body.items[0].invitation_text, null);

    const second = await api(
      sb,
      `/users/invite/sent?account_id=${ACC}&cursor=${encodeURIComponent(first.body.cursor)}`,
    );
    assert.deepEqual(second.body.items.map((i: { id: string }) => i.id), [ids[0]]);
    assert.equal(second.body.cursor, null);
    // Default page size 10.
    assert.equal((await api(sb, `/users/invite/sent?account_id=${ACC}`)).body.items.length, 4);

    for (const bad of ["0", "101", "x", "2.5"]) {
      assertUnipileError(await api(sb, `/users/invite/sent?account_id=${ACC}&limit=${bad}`), 400, "invalid_parameters");
    }
    assertUnipileError(await api(sb, `/users/invite/sent?account_id=${ACC}&cursor=%%%`), 400, "invalid_parameters");
    assertUnipileError(await api(sb, `/users/invite/sent?account_id=${DISCONNECTED}`), 401, "disconnected_account");

    const withdrawn = await api(sb, `/users/invite/sent/${ids[1]}?account_id=${ACC}`, { method: "DELETE" });
    assert.equal(withdrawn.status, 200);
    assert.deepEqual(withdrawn.body, { object: "InvitationCanceled" });
    assert.equal((await api(sb, `/users/invite/sent?account_id=${ACC}`)).body.items.length, 3);
    assertUnipileError(
      await api(sb, `/users/invite/sent/${ids[1]}?account_id=${ACC}`, { method: "DELETE" }),
      404,
      "resource_not_found",
    );
    assertUnipileError(await invite(sb, OMAR), 422, "cannot_resend_yet");

    // An accepted invitation leaves the list (and the invitee is a relation).
    await control(sb, { accept: { invitation_id: ids[0], notify: false } });
    const after = await api(sb, `/users/invite/sent?account_id=${ACC}`);
    assert.deepEqual(after.body.items.map((i: { id: string }) => i.id), [ids[3], ids[2]]);
    assertUnipileError(await invite(sb, JANE), 422, "already_connected");
  });
});

Deno.test("unipile: 2,500 prospects seed fast; GET /users/relations pages them newest first until the cursor is null", async () => {
  await withSandbox(async (sb) => {
    const users = makeUsers(2_500);
    const t0 = performance.now();
    const seeded = await control(sb, {
      users,
      relations: users.map((u, i) => ({
        account_id: ACC,
        provider_id: u.provider_id,
        created_at: Date.parse("2026-11-10T00:00:00.000Z") + i * 1000,
      })),
    });
    const seedMs = performance.now() - t0;
    assert.equal(seeded.status, 200, JSON.stringify(seeded.body));
    assert.equal(seeded.body.seeded.users, 2_505);
    assert.equal(seeded.body.seeded.relations[ACC], 2_501);
    assert.ok(seedMs < 2_000, `seeding 2,500 prospects took ${seedMs} ms`);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `account_id=${ACC}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const res = await api(sb, `/users/relations?${q}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.object, "UserRelationsList");
      for (const r of res.body.items) seen.push(r.member_id);
      cursor = res.body.cursor;
      if (cursor !== null) assert.match(cursor, BASE64);
      pages++;
    } while (cursor !== null);
    assert.equal(pages, 3);
    assert.equal(seen.length, 2_501);
    assert.equal(new Set(seen).size, 2_501);
    assert.equal(seen[0], users[2_499].provider_id); // newest first
    assert.equal(seen[2_499], users[0].provider_id);
    assert.equal(seen[2_500], SAM); // the fixture's relation, made on 1 Nov

    const page = await api(sb, `/users/relations?account_id=${ACC}`);
    assert.equal(page.body.items.length, 100); // default limit
    const r = page.body.items[0];
    assert.deepEqual(Object.keys(r), [
      "object",
      "first_name",
      "last_name",
      "headline",
      "public_identifier",
      "public_profile_url",
      "created_at",
      "member_id",
      "member_urn",
      "connection_urn",
    ]);
    assert.equal(r.object, "UserRelation");
    assert.equal(r.public_identifier, users[2_499].public_identifier);
    assert.equal(r.public_profile_url, `https://www.linkedin.com/in/${users[2_499].public_identifier}/`);
    assert.equal(r.created_at, Date.parse("2026-11-10T00:00:00.000Z") + 2_499_000);
    assert.match(r.member_urn, /^urn:li:member:\d+$/);
    assert.equal(r.connection_urn, `urn:li:fsd_connection:${users[2_499].provider_id}`);

    for (const bad of ["0", "1001", "-1", "ten", ""]) {
      assertUnipileError(await api(sb, `/users/relations?account_id=${ACC}&limit=${bad}`), 400, "invalid_parameters");
    }
    assertUnipileError(
      await api(sb, `/users/relations?account_id=${ACC}&cursor=bm90IGpzb24=`),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await api(sb, "/users/relations"), 400, "invalid_parameters");
    assertUnipileError(await api(sb, `/users/relations?account_id=${DISCONNECTED}`), 401, "disconnected_account");
    assertUnipileError(await api(sb, `/users/relations?account_id=${CREDENTIALS}`), 401, "expired_credentials");
  });
});

Deno.test("unipile: a relation made between two pages shifts the next page (a repeat, never a miss)", async () => {
  await withSandbox(async (sb) => {
    const users = makeUsers(5);
    await control(sb, { users, relations: users.map((u) => ({ account_id: ACC, provider_id: u.provider_id })) });
    const first = await api(sb, `/users/relations?account_id=${ACC}&limit=3`);
    await invite(sb, JANE);
    await control(sb, { accept: { account_id: ACC, provider_id: JANE, notify: false } });
    const second = await api(sb, `/users/relations?account_id=${ACC}&cursor=${encodeURIComponent(first.body.cursor)}`);
    const ids = (page: { items: { member_id: string }[] }) => page.items.map((r) => r.member_id);
    const u = users.map((x) => x.provider_id);
    assert.deepEqual(ids(first.body), [u[4], u[3], u[2]]);
    assert.deepEqual(ids(second.body), [u[2], u[1], u[0]]); // u[2] repeated, nothing lost
    const third = await api(sb, `/users/relations?account_id=${ACC}&cursor=${encodeURIComponent(second.body.cursor)}`);
    assert.deepEqual([ids(third.body), third.body.cursor], [[SAM], null]);
    assert.equal((await api(sb, `/users/relations?account_id=${ACC}&limit=1`)).body.items[0].member_id, JANE);
  });
});

Deno.test("unipile: POST /chats is multipart only; relations only unless InMail; an existing 1:1 chat takes the message", async () => {
  await withSandbox(async (sb) => {
    const started = await startChat(sb, SAM, "Thanks for connecting, Sam!");
    assert.equal(started.status, 201, JSON.stringify(started.body));
    assert.deepEqual(Object.keys(started.body), ["object", "chat_id", "message_id"]);
    assert.equal(started.body.object, "ChatStarted");

    const again = await startChat(sb, SAM, "Following up");
    assert.equal(again.status, 201);
    assert.equal(again.body.chat_id, started.body.chat_id);
    assert.notEqual(again.body.message_id, started.body.message_id);

    assertUnipileError(
      await apiJson(sb, "/chats", { account_id: ACC, attendees_ids: [SAM], text: "json" }),
      400,
      "invalid_parameters",
    );
    assertUnipileError(
      await api(sb, "/chats", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ account_id: ACC, attendees_ids: SAM, text: "form" }),
      }),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await startChat(sb, JANE, "not a relation"), 422, "no_connection_with_recipient");
    const inmail = await startChat(sb, JANE, "An InMail", [["linkedin[inmail]", "true"]]);
    assert.equal(inmail.status, 201);
    await control(sb, { accounts: [{ id: ACC, inmail: false }] });
    assertUnipileError(
      await startChat(sb, OMAR, "no credits", [["linkedin[inmail]", "true"]]),
      422,
      "not_allowed_inmail",
    );
    assertUnipileError(await startChat(sb, "ACoAAUnknownMember000000000000000000000", "x"), 422, "invalid_recipient");
    assertUnipileError(
      await apiForm(sb, "/chats", [["account_id", ACC], ["text", "nobody"]]),
      400,
      "invalid_parameters",
    );
    assertUnipileError(
      await apiForm(sb, "/chats", [["account_id", ACC], ["attendees_ids", SAM]]),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await startChat(sb, SAM, "x".repeat(8_001)), 400, "too_many_characters");
    assertUnipileError(await apiForm(sb, "/chats", [["attendees_ids", SAM], ["text", "x"]]), 400, "invalid_parameters");
    assertUnipileError(
      await apiForm(sb, "/chats", [["account_id", DISCONNECTED], ["attendees_ids", SAM], ["text", "x"]]),
      401,
      "disconnected_account",
    );
    assertUnipileError(await startChat(sb, SAM, "x", [["linkedin[api]", "recruiter"]]), 400, "invalid_parameters");

    const st = await unipileState(sb);
    assert.equal(st.chats.length, 2);
    const sam = st.chats.find((c: { id: string }) => c.id === started.body.chat_id);
    assert.deepEqual(
      sam.messages.map((
        m: { text: string; is_sender: number; sender_id: string },
      ) => [m.text, m.is_sender, m.sender_id]),
      [
        ["Thanks for connecting, Sam!", 1, SENDER],
        ["Following up", 1, SENDER],
      ],
    );
    assert.equal(st.chats.find((c: { id: string }) => c.id === inmail.body.chat_id).content_type, "inmail");
  });
});

Deno.test("unipile: group chats need every attendee to be a relation", async () => {
  await withSandbox(async (sb) => {
    const users = makeUsers(2);
    await control(sb, { users, relations: users.map((u) => ({ account_id: ACC, provider_id: u.provider_id })) });
    const ok = await apiForm(sb, "/chats", [
      ["account_id", ACC],
      ["attendees_ids", users[0].provider_id],
      ["attendees_ids", users[1].provider_id],
      ["text", "Hi both"],
      ["subject", "Intro"],
    ]);
    assert.equal(ok.status, 201);
    const chat = (await api(sb, `/chats/${ok.body.chat_id}`)).body;
    assert.equal(chat.type, 1);
    assert.equal(chat.subject, "Intro");
    assert.equal("attendee_provider_id" in chat, false);
    const refused = await apiForm(sb, "/chats", [["account_id", ACC], ["attendees_ids", SAM], ["attendees_ids", JANE], [
      "text",
      "x",
    ]]);
    assertUnipileError(refused, 422, "no_connection_with_recipient");
  });
});

Deno.test("unipile: POST /chats/{id}/messages is multipart only; 404 for an unknown chat", async () => {
  await withSandbox(async (sb) => {
    const chatId = (await startChat(sb, SAM, "first")).body.chat_id;
    const sent = await apiForm(sb, `/chats/${chatId}/messages`, [["text", "second"]]);
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    assert.deepEqual(Object.keys(sent.body), ["object", "message_id"]);
    assert.equal(sent.body.object, "MessageSent");
    assert.equal(
      (await apiForm(sb, `/chats/${chatId}/messages`, [["text", "third"], ["account_id", ACC]])).status,
      201,
    );

    assertUnipileError(await apiJson(sb, `/chats/${chatId}/messages`, { text: "json" }), 400, "invalid_parameters");
    assertUnipileError(await apiForm(sb, `/chats/${chatId}/messages`, [["text", ""]]), 400, "invalid_parameters");
    assertUnipileError(await apiForm(sb, "/chats/NoSuchChat/messages", [["text", "x"]]), 404, "resource_not_found");
    assertUnipileError(
      await apiForm(sb, `/chats/${chatId}/messages`, [["text", "x"], ["account_id", "Other"]]),
      404,
      "resource_not_found",
    );
    assertUnipileError(await api(sb, "/chats/NoSuchChat"), 404, "resource_not_found");
    assertUnipileError(await api(sb, "/chats/NoSuchChat/messages"), 404, "resource_not_found");

    await control(sb, { accounts: [{ id: ACC, status: "DISCONNECTED" }] });
    assertUnipileError(await apiForm(sb, `/chats/${chatId}/messages`, [["text", "x"]]), 401, "disconnected_account");
    assertUnipileError(await api(sb, `/chats/${chatId}/messages`), 401, "disconnected_account");
    await control(sb, { accounts: [{ id: ACC, status: "OK" }] });
    const texts = (await unipileState(sb)).chats[0].messages.map((m: { text: string }) => m.text);
    assert.deepEqual(texts, ["first", "second", "third"]);
  });
});

Deno.test("unipile: GET /chats/{id}/messages newest first with is_sender, ISO timestamps, cursor and after", async () => {
  await withSandbox(async (sb) => {
    const chatId = (await startChat(sb, SAM, "m0")).body.chat_id;
    for (let i = 1; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 3));
      await apiForm(sb, `/chats/${chatId}/messages`, [["text", `m${i}`]]);
    }
    await new Promise((r) => setTimeout(r, 3));
    const replied = await control(sb, { reply: { account_id: ACC, provider_id: SAM, text: "Sounds good!" } });
    assert.equal(replied.body.seeded.replies[0].chat_id, chatId);

    const first = await api(sb, `/chats/${chatId}/messages?limit=2`);
    assert.equal(first.status, 200);
    assert.equal(first.body.object, "MessageList");
    const [reply, m3] = first.body.items;
    assert.equal(reply.object, "Message");
    assert.equal(reply.text, "Sounds good!");
    assert.equal(reply.is_sender, 0);
    assert.equal(reply.sender_id, SAM);
    assert.equal(reply.chat_id, chatId);
    assert.equal(reply.account_id, ACC);
    assert.match(reply.timestamp, ISO_MS);
    assert.equal(m3.text, "m3");
    assert.equal(m3.is_sender, 1);
    assert.equal(m3.sender_id, SENDER);
    assert.match(first.body.cursor, BASE64);

    const texts: string[] = first.body.items.map((m: { text: string }) => m.text);
    let cursor = first.body.cursor;
    while (cursor !== null) {
      const next = await api(sb, `/chats/${chatId}/messages?cursor=${encodeURIComponent(cursor)}`);
      texts.push(...next.body.items.map((m: { text: string }) => m.text));
      cursor = next.body.cursor;
    }
    assert.deepEqual(texts, ["Sounds good!", "m3", "m2", "m1", "m0"]);

    const after = encodeURIComponent(m3.timestamp);
    assert.deepEqual(
      (await api(sb, `/chats/${chatId}/messages?after=${after}`)).body.items.map((m: { text: string }) => m.text),
      [
        "Sounds good!",
      ],
    );
    assert.deepEqual(
      (await api(sb, `/chats/${chatId}/messages?sender_id=${SAM}`)).body.items.map((m: { text: string }) => m.text),
      ["Sounds good!"],
    );
    assertUnipileError(
      await api(sb, `/chats/${chatId}/messages?after=2026-12-01T00:00:00Z`),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await api(sb, `/chats/${chatId}/messages?after=yesterday`), 400, "invalid_parameters");
    assertUnipileError(await api(sb, `/chats/${chatId}/messages?limit=251`), 400, "invalid_parameters");
  });
});

Deno.test("unipile: GET /chats lists the account's chats by last activity, with attendee_provider_id, cursor, after", async () => {
  await withSandbox(async (sb) => {
    const users = makeUsers(5);
    await control(sb, { users, relations: users.map((u) => ({ account_id: ACC, provider_id: u.provider_id })) });
    const ids: string[] = [];
    for (const u of users) {
      ids.push((await startChat(sb, u.provider_id, `hello ${u.first_name}`)).body.chat_id);
      await new Promise((r) => setTimeout(r, 3));
    }
    // New activity moves a chat to the top.
    await control(sb, { reply: { account_id: ACC, provider_id: users[1].provider_id, text: "hi!" } });

    const first = await api(sb, `/chats?account_id=${ACC}&limit=2`);
    assert.equal(first.status, 200);
    assert.equal(first.body.object, "ChatList");
    assert.deepEqual(first.body.items.map((c: { id: string }) => c.id), [ids[1], ids[4]]);
    const c = first.body.items[0];
    assert.equal(c.object, "Chat");
    assert.equal(c.account_id, ACC);
    assert.equal(c.account_type, "LINKEDIN");
    assert.equal(c.attendee_provider_id, users[1].provider_id);
    assert.equal(c.type, 0);
    assert.equal(c.unread_count, 1);
    assert.match(c.timestamp, ISO_MS);
    const rest: string[] = [];
    let cursor = first.body.cursor;
    while (cursor !== null) {
      const next = await api(sb, `/chats?cursor=${encodeURIComponent(cursor)}`);
      rest.push(...next.body.items.map((x: { id: string }) => x.id));
      cursor = next.body.cursor;
    }
    assert.deepEqual(rest, [ids[3], ids[2], ids[0]]);

    const since = first.body.items[1].timestamp;
    assert.deepEqual(
      (await api(sb, `/chats?account_id=${ACC}&after=${encodeURIComponent(since)}`)).body.items.map((
        x: { id: string },
      ) => x.id),
      [
        ids[1],
      ],
    );
    assert.equal((await api(sb, "/chats?account_id=NoSuchAccount")).status, 404);
    assertUnipileError(await api(sb, `/chats?account_id=${CREDENTIALS}`), 401, "expired_credentials");
    assert.deepEqual((await api(sb, `/chats?account_type=WHATSAPP`)).body.items, []);
    assert.equal((await api(sb, `/chats/${ids[0]}`)).body.id, ids[0]);
  });
});

Deno.test("unipile: the webhook registry — POST (JSON only), GET, DELETE", async () => {
  await withSandbox(async (sb) => {
    const created = await apiJson(sb, "/webhooks", {
      source: "users",
      request_url: "https://example.test/hook",
      name: "duework",
      headers: [{ key: "X-Webhook-Secret", value: "abc" }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.object, "WebhookCreated");
    assert.equal(typeof created.body.webhook_id, "string");

    const list = await api(sb, "/webhooks");
    assert.equal(list.body.object, "WebhookList");
    assert.equal(list.body.cursor, null);
    const hook = list.body.items.find((w: { id: string }) => w.id === created.body.webhook_id);
    assert.equal(hook.object, "Webhook");
    assert.equal(hook.source, "users");
    assert.equal(hook.request_url, "https://example.test/hook");
    assert.deepEqual(hook.headers, [{ key: "X-Webhook-Secret", value: "abc" }]);
    assert.equal(hook.enabled, true);
    assert.equal(hook.format, "json");
    // The sandbox was started without --functions-url: the fixture's webhooks are not registered.
    assert.equal(list.body.items.length, 1);

    assertUnipileError(
      await apiForm(sb, "/webhooks", [["source", "users"], ["request_url", "https://example.test/x"]]),
      400,
      "invalid_parameters",
    );
    assertUnipileError(
      await apiJson(sb, "/webhooks", { source: "carrier-pigeon", request_url: "https://x.test" }),
      400,
      "invalid_parameters",
    );
    assertUnipileError(
      await apiJson(sb, "/webhooks", { source: "users", request_url: "not a url" }),
      400,
      "invalid_parameters",
    );
    assertUnipileError(await apiJson(sb, "/webhooks", { source: "users" }), 400, "invalid_parameters");
    assertUnipileError(
      await apiJson(sb, "/webhooks", {
        source: "users",
        request_url: "https://example.test/x",
        headers: [{ key: "Bad Header", value: "x" }],
      }),
      400,
      "invalid_parameters",
    );

    const deleted = await api(sb, `/webhooks/${created.body.webhook_id}`, { method: "DELETE" });
    assert.deepEqual([deleted.status, deleted.body], [200, { object: "WebhookDeleted" }]);
    assertUnipileError(
      await api(sb, `/webhooks/${created.body.webhook_id}`, { method: "DELETE" }),
      404,
      "resource_not_found",
    );
    assert.deepEqual((await api(sb, "/webhooks")).body.items, []);
  });
});

Deno.test("unipile: /__faults answers in Unipile's envelope; the request log redacts X-API-KEY and webhook secrets", async () => {
  await withSandbox(async (sb) => {
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "unipile",
      path: "/api/v1/users/invite",
      status: 429,
      retry_after: 7,
      times: 1,
    });
    const limited = await invite(sb, JANE);
    assertUnipileError(limited, 429, "too_many_requests");
    assert.equal(limited.headers.get("retry-after"), "7");
    assert.equal((await unipileState(sb)).invitations.length, 0); // never processed
    await postJson(`${sb.controlUrl}/__faults`, { provider: "unipile", status: 401, times: 1 });
    assertUnipileError(await api(sb, `/users/relations?account_id=${ACC}`), 401, "disconnected_account");
    await postJson(`${sb.controlUrl}/__faults`, { provider: "unipile", status: 500, times: 1 });
    assertUnipileError(await api(sb, `/users/relations?account_id=${ACC}`), 500, "unexpected_error");

    await apiJson(sb, "/webhooks", {
      source: "users",
      request_url: "https://example.test/hook",
      headers: [{ key: "X-Webhook-Secret", value: "very-secret-value" }, { key: "X-Trace", value: "visible" }],
    });
    const log = (await call(`${sb.controlUrl}/__requests?provider=unipile`)).body.requests;
    assert.ok(log.length >= 4);
    for (const e of log) assert.equal(e.headers["x-api-key"], "[redacted]");
    const hookReq = log.find((e: { path: string }) => e.path === "/api/v1/webhooks");
    assert.deepEqual(hookReq.body.headers, [
      { key: "X-Webhook-Secret", value: "[redacted]" },
      { key: "X-Trace", value: "visible" },
    ]);
    const text = JSON.stringify(log) + JSON.stringify(await unipileState(sb));
    assert.equal(text.includes(KEY), false);
    assert.equal(text.includes("very-secret-value"), false);
  });
});
