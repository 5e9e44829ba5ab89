// unipile-webhook: Unipile's webhooks for the outreach product (docs/outreach.md,
// provider-contracts §6): `new_relation` (source "users": an invitation was accepted, up to 8 h
// late) and `message_received` (source "messaging": a message in one of the account's chats).
//
// verify_jwt = false (Unipile sends no JWT) and Unipile v1 documents no signature: the webhook is
// created with a custom header X-Webhook-Secret = UNIPILE_WEBHOOK_SECRET, and that header is the
// credential, compared in constant time. Nothing touches the database before it matches.
//
//   not POST → 405; body over 64 KiB → 413; UNIPILE_WEBHOOK_SECRET unset or shorter than 32
//   characters → 500 configuration_error (Unipile retries, so nothing is lost while it is fixed);
//   header missing or wrong → 401 {"error":"unauthorized"}; not JSON, not an object → 400
//   {"error":"invalid_request","field":"body"}; no event → 400 field "event";
//   new_relation     → account_id and user_provider_id or user_public_identifier required (400
//                      naming the field), one call of outreach.record_new_relation(jsonb),
//                      200 with its {matched, connected, prospect_ids}
//   message_received → account_id and chat_id required, one call of
//                      outreach.record_message_received(jsonb), 200 with its {matched, replied,
//                      prospect_ids}; a message the account sent itself → 200 {ignored} unrecorded
//   another event    → 200 {"ignored": true, "event"}, no database call
//   database error   → 500, so Unipile delivers the event again
//
// Unipile must have a 200 within 30 s and retries up to 5 times otherwise, so every event may
// arrive more than once: the SQL functions are idempotent (a prospect already connected or
// replied stays so). Only the fields named in the contract are passed on, normalised (strings
// trimmed, absent = null); everything else in the body is dropped. The secret is never logged
// or returned, and log lines carry ids and counts only, never names or profile identifiers.

import { safeEqual } from "../_shared/auth.ts";
import { type Env, envValue } from "../_shared/env.ts";
import { parseJson } from "../_shared/http.ts";
import { describeDatabaseError } from "../_shared/job_store.ts";
import { redact } from "../_shared/redact.ts";
import { errorResponse } from "../_shared/result.ts";
import { invalidRequestResponse } from "../_shared/task_batch.ts";
import { readWebhookBody } from "../_shared/webhook.ts";

export const SECRET_HEADER = "X-Webhook-Secret";
export const SECRET_SETTING = "UNIPILE_WEBHOOK_SECRET";
export const MIN_SECRET_LENGTH = 32;
/** Longer than any id Unipile or LinkedIn hands out; a longer value is not one. */
export const MAX_ID_LENGTH = 512;
const MAX_NAME_LENGTH = 500;

/** What outreach.record_new_relation receives. */
export interface NewRelationEvent {
  account_id: string;
  /** LinkedIn's ACo… id; at least one of the two identifiers is set. */
  user_provider_id: string | null;
  user_public_identifier: string | null;
  user_full_name: string | null;
}

/** What outreach.record_message_received receives. */
export interface MessageReceivedEvent {
  account_id: string;
  chat_id: string;
  message_id: string | null;
  /** The sender's LinkedIn provider id, null when the body does not say. */
  sender_provider_id: string | null;
  /** ISO 8601, null when absent or unreadable. */
  timestamp: string | null;
}

/** What outreach.record_new_relation returns. */
export interface NewRelationResult {
  matched: number;
  connected: number;
  prospect_ids: number[];
}

/** What outreach.record_message_received returns. */
export interface MessageReceivedResult {
  matched: number;
  replied: number;
  prospect_ids: number[];
}

/** The database calls of this function, one per event. */
export interface OutreachEventStore {
  /** select outreach.record_new_relation($1::jsonb) */
  recordNewRelation(event: NewRelationEvent): Promise<NewRelationResult>;
  /** select outreach.record_message_received($1::jsonb) */
  recordMessageReceived(event: MessageReceivedEvent): Promise<MessageReceivedResult>;
}

export interface UnipileWebhookDeps {
  env: Env;
  /** Called only for a request whose secret matched. */
  store: () => OutreachEventStore;
  log?: (line: string) => void;
}

type Json = Record<string, unknown>;

/** A field of the body that is present but not usable: 400 naming it. */
class InvalidField extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/** A trimmed id, null when absent, null or empty; anything but a string is refused. */
function optionalId(obj: Json, key: string, field: string = key): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new InvalidField(field, "must be a string");
  const id = v.trim();
  if (id.length > MAX_ID_LENGTH) throw new InvalidField(field, `longer than ${MAX_ID_LENGTH} characters`);
  // Postgres text (and jsonb) cannot hold NUL: passed on, it would fail the SQL call with a 500,
  // and Unipile would deliver the same event four more times.
  if (id.includes("\u0000")) throw new InvalidField(field, "contains a NUL character");
  return id === "" ? null : id;
}

function requiredId(obj: Json, key: string): string {
  const id = optionalId(obj, key);
  if (id === null) throw new InvalidField(key, "required");
  return id;
}

/** A value nobody depends on (a display name, an id used only to skip work): unusable = null. */
function lenientText(v: unknown, max: number): string | null {
  if (typeof v !== "string") return null;
  // NUL dropped: Postgres text cannot hold it (see optionalId), and a display name loses nothing.
  const t = v.replaceAll("\u0000", "").trim();
  return t === "" ? null : t.slice(0, max);
}

/** Unipile's timestamp as ISO 8601. UNVERIFIED: documented as an ISO string; a number is read
 * as epoch seconds, or milliseconds when that large (Unipile uses both elsewhere). */
function isoTimestamp(v: unknown): string | null {
  let ms: number;
  if (typeof v === "string" && v.trim() !== "") ms = Date.parse(v.trim());
  else if (typeof v === "number" && Number.isFinite(v)) ms = v > 1e11 ? v : v * 1000;
  else return null;
  return Number.isNaN(ms) || Math.abs(ms) > 8.64e15 ? null : new Date(ms).toISOString();
}

export function normaliseNewRelation(body: Json): NewRelationEvent {
  const account_id = requiredId(body, "account_id");
  const user_provider_id = optionalId(body, "user_provider_id");
  const user_public_identifier = optionalId(body, "user_public_identifier");
  if (user_provider_id === null && user_public_identifier === null) {
    throw new InvalidField("user_provider_id", "user_provider_id or user_public_identifier is required");
  }
  return { account_id, user_provider_id, user_public_identifier, user_full_name: lenientText(body.user_full_name, MAX_NAME_LENGTH) };
}

/** The event to record, or null for a message the account sent itself. */
export function normaliseMessageReceived(body: Json): MessageReceivedEvent | null {
  const account_id = requiredId(body, "account_id");
  const chat_id = requiredId(body, "chat_id");
  // UNVERIFIED shape: Unipile's examples put the sender in `sender: {attendee_id, attendee_name,
  // attendee_provider_id, …}` (attendee_id is Unipile's own id, not LinkedIn's, so it is never
  // used); a flat `sender_provider_id` is accepted too. No sender → null: a reply cannot be told
  // from the account's own message then, and outreach.record_message_received records nothing.
  const sender = isObject(body.sender) ? optionalId(body.sender, "attendee_provider_id", "sender.attendee_provider_id") : null;
  const sender_provider_id = sender ?? optionalId(body, "sender_provider_id");
  // Unipile also reports the messages the account sends (our own invitations' notes and
  // follow-ups). UNVERIFIED: `account_info.user_id` is said to be the account's own provider id;
  // when it equals the sender's, the message is not a reply. When either is missing or the two
  // differ in format, nothing is skipped and the SQL's sender match decides.
  const own = isObject(body.account_info) ? lenientText(body.account_info.user_id, MAX_ID_LENGTH) : null;
  if (own !== null && sender_provider_id === own) return null;
  return {
    account_id,
    chat_id,
    message_id: optionalId(body, "message_id"),
    sender_provider_id,
    timestamp: isoTimestamp(body.timestamp),
  };
}

function unauthorized(reason: "missing_secret" | "invalid_secret"): Response {
  const message = reason === "missing_secret" ? `no ${SECRET_HEADER} header` : `${SECRET_HEADER} does not match`;
  return Response.json({ error: "unauthorized", reason, message }, { status: 401 });
}

/** The configured secret, or the configuration error (no event can be verified). */
function configuredSecret(env: Env): { ok: true; secret: string } | { ok: false; message: string } {
  const secret = envValue(env, SECRET_SETTING);
  if (secret === undefined) return { ok: false, message: `${SECRET_SETTING} is not set; Unipile's webhooks cannot be verified` };
  if (secret.length < MIN_SECRET_LENGTH) {
    return { ok: false, message: `${SECRET_SETTING} must be at least ${MIN_SECRET_LENGTH} characters; Unipile's webhooks are refused until it is` };
  }
  return { ok: true, secret };
}

export function createHandler(deps: UnipileWebhookDeps): (req: Request) => Promise<Response> {
  const log = deps.log ?? ((line: string) => console.log(line));

  return async (req) => {
    const read = await readWebhookBody(req);
    if (!read.ok) return read.response;

    const config = configuredSecret(deps.env);
    if (!config.ok) {
      // 500, not 4xx: Unipile retries (up to 5 times, increasing delays), so events that arrive
      // while the secret is being fixed are delivered again.
      log(`unipile-webhook: configuration error: ${config.message}`);
      return errorResponse(500, "configuration_error", config.message);
    }
    const presented = req.headers.get(SECRET_HEADER);
    if (presented === null || presented === "") return unauthorized("missing_secret");
    if (!safeEqual(presented, config.secret)) {
      log(`unipile-webhook: refused a request whose ${SECRET_HEADER} does not match`);
      return unauthorized("invalid_secret");
    }

    // Content-Type is not checked (UNVERIFIED what Unipile sends): the body must parse as JSON.
    const body = parseJson(read.body);
    if (body === undefined) return invalidRequestResponse("body", "not JSON");
    if (!isObject(body)) return invalidRequestResponse("body", "must be a JSON object");
    if (body.event === undefined || body.event === null || body.event === "") return invalidRequestResponse("event", "required");
    if (typeof body.event !== "string") return invalidRequestResponse("event", "must be a string");
    const event = body.event;

    let record: () => Promise<NewRelationResult | MessageReceivedResult>;
    let accountId: string;
    let personal: (string | null)[] = [];
    try {
      if (event === "new_relation") {
        const e = normaliseNewRelation(body);
        accountId = e.account_id;
        personal = [e.user_public_identifier, e.user_full_name];
        record = () => deps.store().recordNewRelation(e);
      } else if (event === "message_received") {
        const e = normaliseMessageReceived(body);
        if (e === null) {
          log(`unipile-webhook: message_received for account ${optionalId(body, "account_id")}: sent by the account itself, ignored`);
          return Response.json({ ignored: true, event, reason: "sent_by_account" });
        }
        accountId = e.account_id;
        record = () => deps.store().recordMessageReceived(e);
      } else {
        log(`unipile-webhook: ignored event ${JSON.stringify(event.slice(0, 64))}`);
        return Response.json({ ignored: true, event });
      }
    } catch (err) {
      if (err instanceof InvalidField) return invalidRequestResponse(err.field, err.message);
      throw err;
    }

    let result: NewRelationResult | MessageReceivedResult;
    try {
      result = await record();
    } catch (err) {
      // The statement's own text may quote a value; neither the secret nor a name is logged.
      log(`unipile-webhook: ${event} for account ${accountId} could not be recorded: ${redact(describeDatabaseError(err), [config.secret, ...personal])}`);
      return errorResponse(500, "database_error", "the event could not be recorded; Unipile will deliver it again");
    }
    const r = (result ?? {}) as Partial<NewRelationResult & MessageReceivedResult>;
    const changed = event === "new_relation" ? `connected ${r.connected ?? 0}` : `replied ${r.replied ?? 0}`;
    log(`unipile-webhook: ${event} for account ${accountId}: matched ${r.matched ?? 0}, ${changed}` +
      (Array.isArray(r.prospect_ids) && r.prospect_ids.length > 0 ? ` (prospects ${r.prospect_ids.join(", ")})` : ""));
    return Response.json(result ?? {});
  };
}
