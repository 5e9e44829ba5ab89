// The official Unipile SDK (unipile-node-sdk) against the Unipile fake, changing nothing but where
// it sends requests (the DSN origin: `new UnipileClient(origin, key)` appends /api/v1). With
// validateRequestPayload on at level "error" the SDK checks every answer against its own response
// schemas, so these tests prove the fake's bodies match what the vendor's client expects:
// profiles, invitations, relations paging, multipart chats and messages, lists, webhooks, errors.

import assert from "node:assert/strict";
import { InvalidResponseTypeError, UnipileClient, UnsuccessfulRequestError } from "npm:unipile-node-sdk@1.9.3";
import type { Sandbox } from "./server.ts";
import { postJson, withSandbox } from "./test_util.ts";
import { ACC, control, DISCONNECTED, JANE, KEY, makeUsers, SAM } from "./unipile_test_util.ts";

function unipileClient(sb: Sandbox, key = KEY) {
  return new UnipileClient(sb.providers.unipile, key, {
    validateRequestPayload: true,
    validateRequestPayloadLevel: "error",
  });
}

/** The Unipile envelope the SDK puts on UnsuccessfulRequestError.body. */
async function unipileFailure(
  p: Promise<unknown>,
): Promise<{ type: string; status: number; title: string; detail: string }> {
  const e = await p.then(() => null, (e) => e);
  assert.ok(e instanceof UnsuccessfulRequestError, String(e));
  return (e as UnsuccessfulRequestError).body as { type: string; status: number; title: string; detail: string };
}

Deno.test("official unipile SDK: getProfile, sendInvitation, getAllInvitationsSent, getAllRelations paging, typed errors", async () => {
  await withSandbox(async (sb) => {
    const client = unipileClient(sb);
    const profile = await client.users.getProfile({ account_id: ACC, identifier: "jane-doe-duework" });
    assert.equal(profile.object, "UserProfile");
    assert.equal(profile.provider, "LINKEDIN");
    assert.ok(profile.provider === "LINKEDIN" && profile.provider_id === JANE);
    const withSections = await client.users.getProfile({
      account_id: ACC,
      identifier: JANE,
      linkedin_sections: ["experience"],
    });
    assert.ok(withSections.provider === "LINKEDIN" && withSections.work_experience?.[0].company === "Northwind");

    const sent = await client.users.sendInvitation({ account_id: ACC, provider_id: JANE, message: "Hi Jane" });
    assert.equal(sent.object, "UserInvitationSent");
    assert.match(sent.invitation_id, /^\d+$/);
    const invitations = await client.users.getAllInvitationsSent({ account_id: ACC });
    assert.equal(invitations.object, "InvitationList");
    assert.deepEqual(invitations.items.map((i) => [i.id, i.invited_user_id, i.invited_user_public_id]), [
      [sent.invitation_id, JANE, "jane-doe-duework"],
    ]);

    const users = makeUsers(249, "Sdk");
    await control(sb, { users, relations: users.map((u) => ({ account_id: ACC, provider_id: u.provider_id })) });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.users.getAllRelations({ account_id: ACC, limit: 100, ...(cursor && { cursor }) });
      assert.equal(page.object, "UserRelationsList");
      seen.push(...page.items.map((r) => r.public_identifier));
      cursor = page.cursor ?? undefined;
      pages++;
    } while (cursor !== undefined);
    assert.equal(pages, 3);
    assert.equal(seen.length, 250);
    assert.equal(seen[0], users[248].public_identifier);
    assert.equal(seen[249], "sam-okafor-duework");

    const again = await unipileFailure(client.users.sendInvitation({ account_id: ACC, provider_id: JANE }));
    assert.deepEqual([again.status, again.type], [422, "errors/already_invited_recently"]);
    const connected = await unipileFailure(client.users.sendInvitation({ account_id: ACC, provider_id: SAM }));
    assert.equal(connected.type, "errors/already_connected");
    const long = await unipileFailure(
      client.users.sendInvitation({ account_id: ACC, provider_id: users[0].provider_id, message: "x".repeat(301) }),
    );
    assert.deepEqual([long.status, long.type], [400, "errors/too_many_characters"]);
    const gone = await unipileFailure(
      client.users.getProfile({ account_id: DISCONNECTED, identifier: "jane-doe-duework" }),
    );
    assert.deepEqual([gone.status, gone.type], [401, "errors/disconnected_account"]);
    const unknown = await unipileFailure(client.users.getProfile({ account_id: ACC, identifier: "nobody-here" }));
    assert.deepEqual([unknown.status, unknown.type], [404, "errors/resource_not_found"]);
    const badKey = await unipileFailure(unipileClient(sb, "wrong-key").users.getAllRelations({ account_id: ACC }));
    assert.equal(badKey.status, 401);
    assert.notEqual(badKey.type, "errors/disconnected_account");

    const canceled = await client.users.cancelInvitationSent({ account_id: ACC, invitation_id: sent.invitation_id });
    assert.equal(canceled.object, "InvitationCanceled");

    // The schema check is really on: a 200 of the wrong shape is refused by the SDK.
    await postJson(`${sb.controlUrl}/__faults`, {
      provider: "unipile",
      status: 200,
      body: { object: "Nope" },
      times: 1,
    });
    await assert.rejects(client.users.getAllRelations({ account_id: ACC }), InvalidResponseTypeError);
  });
});

Deno.test("official unipile SDK: startNewChat and sendMessage (multipart), getAllChats, getAllMessagesFromChat, webhooks", async () => {
  await withSandbox(async (sb) => {
    const client = unipileClient(sb);
    const started = await client.messaging.startNewChat({
      account_id: ACC,
      attendees_ids: [SAM],
      text: "Thanks for connecting!",
    });
    assert.equal(started.object, "ChatStarted");
    assert.equal(typeof started.chat_id, "string");
    const sent = await client.messaging.sendMessage({ chat_id: started.chat_id!, text: "FU1" });
    assert.equal(sent.object, "MessageSent");
    const inmail = await client.messaging.startNewChat({
      account_id: ACC,
      attendees_ids: [JANE],
      text: "An InMail",
      // The SDK sends linkedin[inmail] only together with api: "classic" (its type guard needs both).
      options: { linkedin: { api: "classic", inmail: true } },
    });
    assert.equal(inmail.object, "ChatStarted");
    const refused = await unipileFailure(
      client.messaging.startNewChat({ account_id: ACC, attendees_ids: [JANE], text: "no InMail" }),
    );
    assert.deepEqual([refused.status, refused.type], [422, "errors/no_connection_with_recipient"]);
    const missing = await unipileFailure(client.messaging.sendMessage({ chat_id: "NoSuchChat", text: "x" }));
    assert.equal(missing.status, 404);

    await control(sb, { reply: { account_id: ACC, provider_id: SAM, text: "Happy to chat" } });
    const chats = await client.messaging.getAllChats({ account_id: ACC, limit: 1 });
    assert.equal(chats.object, "ChatList");
    assert.deepEqual(chats.items.map((c) => [c.id, c.attendee_provider_id]), [[started.chat_id, SAM]]);
    assert.ok(chats.cursor !== null);
    const next = await client.messaging.getAllChats({ cursor: chats.cursor! });
    assert.deepEqual(next.items.map((c) => c.id), [inmail.chat_id]);

    const messages = await client.messaging.getAllMessagesFromChat({ chat_id: started.chat_id!, limit: 2 });
    assert.equal(messages.object, "MessageList");
    assert.deepEqual(messages.items.map((m) => [m.text, m.is_sender]), [["Happy to chat", 0], ["FU1", 1]]);
    const rest = await client.messaging.getAllMessagesFromChat({ chat_id: started.chat_id!, cursor: messages.cursor! });
    assert.deepEqual(rest.items.map((m) => m.text), ["Thanks for connecting!"]);
    assert.equal(rest.cursor, null);

    const hook = await client.webhook.create({
      source: "messaging",
      request_url: "https://example.test/unipile-webhook",
      name: "duework-messaging",
      headers: [{ key: "X-Webhook-Secret", value: "s3cret-s3cret-s3cret-s3cret-s3cret" }],
    });
    assert.equal(hook.object, "WebhookCreated");
    const hooks = await client.webhook.getAll();
    assert.deepEqual(hooks.items.map((w) => w.id), [hook.webhook_id]);
    const deleted = await client.webhook.delete(hook.webhook_id);
    assert.equal(deleted.object, "WebhookDeleted");
  });
});
