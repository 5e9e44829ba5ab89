// The fake Unipile's users endpoints (provider-contracts §6; shapes from unipile-node-sdk 1.9.3's
// response schemas, users/*.types):
//   GET    /users/{identifier}?account_id=          profile (public identifier or provider id)
//   POST   /users/invite                            JSON {account_id, provider_id, message?}
//   GET    /users/invite/sent?account_id&limit&cursor  pending invitations, newest first
//   DELETE /users/invite/sent/{invitation_id}?account_id=  withdraw
//   GET    /users/relations?account_id&limit&cursor    relations, newest first

import { jsonResponse } from "../http.ts";
import type { SandboxRequest } from "../types.ts";
import { err, type UnipileErrorSpec } from "./unipile_errors.ts";
import { scheduleAutoAccept } from "./unipile_events.ts";
import { accountFor, decodeCursor, encodeCursor, jsonBody, parseLimit } from "./unipile_params.ts";
import {
  fullName,
  type Invitation,
  invitationId,
  type LinkedInUser,
  profileUrl,
  relationsByAge,
  type UnipileAccount,
  type UnipileState,
} from "./unipile_state.ts";

export type Answer = Response | UnipileErrorSpec;

/** LinkedIn's limit on a connection note. */
export const NOTE_MAX = 300;

/** A provider id, or a public identifier in any case (LinkedIn vanity names ignore case). */
export function findUser(state: UnipileState, identifier: string): LinkedInUser | undefined {
  return state.users.get(identifier) ?? state.users.get(state.byPublicId.get(identifier.toLowerCase()) ?? "");
}

// ---------------------------------------------------------------------------------------------
// GET /users/{identifier}
// ---------------------------------------------------------------------------------------------

function profileJson(acc: UnipileAccount, u: LinkedInUser, sections: string[]) {
  const relation = acc.relations.has(u.provider_id);
  const inv = acc.lastInvitation.get(u.provider_id);
  const wantsExperience = sections.includes("*") || sections.includes("experience");
  return {
    object: "UserProfile",
    provider: "LINKEDIN",
    provider_id: u.provider_id,
    public_identifier: u.public_identifier,
    first_name: u.first_name,
    last_name: u.last_name,
    headline: u.headline,
    ...(u.location !== null && { location: u.location }),
    websites: [],
    ...(u.profile_picture_url !== null && { profile_picture_url: u.profile_picture_url }),
    is_relationship: relation,
    network_distance: relation ? "FIRST_DEGREE" : "SECOND_DEGREE",
    ...(!relation && inv?.status === "pending" && { invitation: { type: "SENT", status: "PENDING" } }),
    ...(wantsExperience && {
      work_experience: u.company === null
        ? []
        : [{ position: u.headline, company: u.company, current: true, start: null, end: null }],
    }),
    public_profile_url: profileUrl(u.public_identifier),
  };
}

export function getProfile(state: UnipileState, req: SandboxRequest, identifier: string): Answer {
  const acc = accountFor(state, req.query.get("account_id"));
  if (!acc.ok) return acc.error;
  const user = findUser(state, identifier);
  if (user === undefined) return err.userNotFound(identifier);
  const sections = (req.query.get("linkedin_sections") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return jsonResponse(200, profileJson(acc.value, user, sections));
}

// ---------------------------------------------------------------------------------------------
// POST /users/invite
// ---------------------------------------------------------------------------------------------

export function sendInvitation(state: UnipileState, req: SandboxRequest): Answer {
  const body = jsonBody(req);
  if (!body.ok) return body.error;
  const b = body.value;
  if (typeof b.provider_id !== "string" || b.provider_id === "") {
    return err.invalidParameters("provider_id is required.");
  }
  if (b.message !== undefined && b.message !== null && typeof b.message !== "string") {
    return err.invalidParameters("message must be a string.");
  }
  const acc = accountFor(state, b.account_id);
  if (!acc.ok) return acc.error;
  const a = acc.value;
  const message = typeof b.message === "string" && b.message !== "" ? b.message : null;
  // LinkedIn counts characters as a person sees them; code points are the fake's reading.
  if (message !== null && [...message].length > NOTE_MAX) return err.tooManyCharacters("message", NOTE_MAX);
  // Only a provider id names an invitee (a public identifier is looked up first, GET /users).
  const user = state.users.get(b.provider_id);
  if (user === undefined) return err.invalidRecipient(b.provider_id);
  if (a.relations.has(user.provider_id)) return err.alreadyConnected();
  const previous = a.lastInvitation.get(user.provider_id);
  if (previous?.status === "pending" || previous?.status === "accepted") return err.alreadyInvitedRecently();
  if (previous?.status === "withdrawn") return err.cannotResendYet();
  if (a.invite_limit !== null && a.invites_sent >= a.invite_limit) return err.limitExceeded();

  const now = state.now();
  const inv: Invitation = {
    id: invitationId(),
    account_id: a.id,
    provider_id: user.provider_id,
    message,
    status: "pending",
    created_at: now,
    accepted_at: null,
    withdrawn_at: null,
    shared_secret: crypto.randomUUID().replaceAll("-", ""),
    seq: state.nextSeq(),
  };
  state.invitations.set(inv.id, inv);
  a.invitations.push(inv);
  a.lastInvitation.set(user.provider_id, inv);
  a.invites_sent++;
  state.counters.invitations_sent++;
  scheduleAutoAccept(state, inv);

  // `usage` (% of the LinkedIn quota used) reportedly appears only once a threshold is crossed:
  // the fake adds it from 80 % of invite_limit on (threshold UNVERIFIED).
  const usage = a.invite_limit ? Math.round((100 * a.invites_sent) / a.invite_limit) : null;
  return jsonResponse(200, {
    object: "UserInvitationSent",
    invitation_id: inv.id,
    ...(usage !== null && usage >= 80 && { usage }),
  });
}

// ---------------------------------------------------------------------------------------------
// GET /users/invite/sent, DELETE /users/invite/sent/{id}
// ---------------------------------------------------------------------------------------------

/** LinkedIn shows "Sent today" / "Sent 3 days ago"; read parsed_datetime instead. */
function relativeDate(state: UnipileState, ms: number): string {
  const days = Math.floor((state.now() - ms) / 86_400_000);
  if (days <= 0) return "Sent today";
  return days === 1 ? "Sent 1 day ago" : `Sent ${days} days ago`;
}

/**
 * An InvitationSent item (the SDK's InvitationSchema). invited_user_id = the invitee's provider
 * id and invited_user_public_id = their public identifier, so a caller can find its invitation by
 * either (that these carry exactly those ids is UNVERIFIED; match defensively).
 */
function invitationJson(state: UnipileState, acc: UnipileAccount, inv: Invitation) {
  const u = state.users.get(inv.provider_id);
  return {
    object: "InvitationSent",
    id: inv.id,
    date: relativeDate(state, inv.created_at),
    parsed_datetime: new Date(inv.created_at).toISOString(),
    invited_user: u ? fullName(u) : null,
    invited_user_id: inv.provider_id,
    invited_user_public_id: u?.public_identifier ?? null,
    invited_user_description: u?.headline ?? null,
    invitation_text: inv.message,
    inviter: {
      inviter_name: acc.name,
      inviter_id: acc.provider_id,
      inviter_public_identifier: acc.public_identifier,
      inviter_description: null,
    },
    specifics: { provider: "LINKEDIN", shared_secret: inv.shared_secret },
  };
}

export function listSentInvitations(state: UnipileState, req: SandboxRequest): Answer {
  const acc = accountFor(state, req.query.get("account_id"));
  if (!acc.ok) return acc.error;
  const limit = parseLimit(req.query, 100, 10);
  if (!limit.ok) return limit.error;
  const cursor = decodeCursor(req.query.get("cursor"));
  if (!cursor.ok) return cursor.error;
  // The SDK's decoded cursor is {limit, cursor: <offset>}.
  const start = cursor.value === null ? 0 : Number(cursor.value.cursor);
  if (!Number.isInteger(start) || start < 0) return err.invalidParameters("cursor is invalid.");
  const size = limit.value ?? (Number(cursor.value?.limit) || 10);
  const pending = acc.value.invitations.filter((i) => i.status === "pending").reverse();
  const page = pending.slice(start, start + size);
  const next = start + size < pending.length ? encodeCursor({ limit: size, cursor: start + size }) : null;
  return jsonResponse(200, {
    object: "InvitationList",
    items: page.map((i) => invitationJson(state, acc.value, i)),
    cursor: next,
  });
}

export function cancelInvitation(state: UnipileState, req: SandboxRequest, id: string): Answer {
  const acc = accountFor(state, req.query.get("account_id"));
  if (!acc.ok) return acc.error;
  const inv = state.invitations.get(id);
  if (inv === undefined || inv.account_id !== acc.value.id || inv.status !== "pending") {
    return err.notFound(`Invitation ${id}`);
  }
  inv.status = "withdrawn";
  inv.withdrawn_at = state.now();
  return jsonResponse(200, { object: "InvitationCanceled" });
}

// ---------------------------------------------------------------------------------------------
// GET /users/relations
// ---------------------------------------------------------------------------------------------

/**
 * A UserRelation. UNVERIFIED (scraped examples disagree): created_at is epoch milliseconds here,
 * and member_id is the ACo… provider id (not LinkedIn's numeric member id, which is in
 * member_urn). Match relations to invitations on public_identifier and/or member_id.
 */
function relationJson(u: LinkedInUser, createdAt: number) {
  return {
    object: "UserRelation",
    first_name: u.first_name,
    last_name: u.last_name,
    headline: u.headline,
    public_identifier: u.public_identifier,
    public_profile_url: profileUrl(u.public_identifier),
    created_at: createdAt,
    member_id: u.provider_id,
    member_urn: `urn:li:member:${u.member_number}`,
    connection_urn: `urn:li:fsd_connection:${u.provider_id}`,
    ...(u.profile_picture_url !== null && { profile_picture_url: u.profile_picture_url }),
  };
}

export function listRelations(state: UnipileState, req: SandboxRequest): Answer {
  const acc = accountFor(state, req.query.get("account_id"));
  if (!acc.ok) return acc.error;
  const limit = parseLimit(req.query, 1000, 100);
  if (!limit.ok) return limit.error;
  const cursor = decodeCursor(req.query.get("cursor"));
  if (!cursor.ok) return cursor.error;
  // The SDK's decoded cursor is {limit, startIndex}: an offset from the newest relation, so a
  // relation made between two pages shifts the next page by one (a repeat, never a miss).
  const start = cursor.value === null ? 0 : Number(cursor.value.startIndex);
  if (!Number.isInteger(start) || start < 0) return err.invalidParameters("cursor is invalid.");
  const size = limit.value ?? (Number(cursor.value?.limit) || 100);
  const all = relationsByAge(acc.value); // oldest first: read from the end
  const items = [];
  for (let i = all.length - 1 - start; i >= 0 && items.length < size; i--) {
    const u = state.users.get(all[i].provider_id);
    if (u !== undefined) items.push(relationJson(u, all[i].created_at));
  }
  const next = start + size < all.length ? encodeCursor({ limit: size, startIndex: start + size }) : null;
  return jsonResponse(200, { object: "UserRelationsList", items, cursor: next });
}
