// An in-process fake of Unipile's API v1 for handler tests (linkedin-send, check-relations): an
// injected fetch that builds a real Request from what the client passed (so a FormData body gets
// the Content-Type and boundary fetch would write, and a hand-set Content-Type would show), records
// every request (method, path below /api/v1, query, headers, JSON body or multipart fields) and
// answers from a small state: profiles, sent invitations, relations, chats and their messages.
// `respond` may answer a request itself (an error, a hang, a dropped connection) before the state
// does. Tests only; never imported by an index.ts. (The local stack's Unipile fake is the
// sandbox's, scripts/local/sandbox.)

export type FakeUnipileAnswer =
  | { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number }
  | "hang"
  | "drop";

export interface FakeUnipileRequest {
  method: string;
  /** Below the API root: `/users/invite`, `/chats/chat_1/messages`. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  json: Record<string, unknown> | null;
  /** Multipart fields, when the body was multipart. */
  form: FormData | null;
  /** The raw text of a non-multipart body. */
  text: string;
}

export interface FakeChat {
  id: string;
  attendee_provider_id: string;
  messages: { id: string; text: string; is_sender: 0 | 1; timestamp: string; is_event?: 0 | 1 }[];
}

export interface FakeUnipileState {
  apiKey: string;
  /** public_identifier → provider_id */
  profiles: Map<string, string>;
  invitations: { id: string; invited_user_id: string; invited_user_public_id: string | null; date: string }[];
  relations: Record<string, unknown>[];
  chats: FakeChat[];
}

export interface FakeUnipile {
  fetch: typeof fetch;
  requests: FakeUnipileRequest[];
  state: FakeUnipileState;
  /** Highest number of requests in flight at once, per unipile account_id. */
  maxInFlightPerAccount: Map<string, number>;
  /** Highest number of requests in flight at once, all accounts together. */
  maxInFlight(): number;
}

export const FAKE_UNIPILE_ROOT = "/api/v1";

export function unipileError(status: number, type: string, title = type, headers: Record<string, string> = {}): FakeUnipileAnswer {
  return { status, body: { title, detail: `${title}.`, instance: "", type: `errors/${type}`, status }, headers };
}

let seq = 0;
const nextId = (prefix: string) => `${prefix}_${(++seq).toString(36).padStart(6, "0")}`;

/** Pages of `items` by offset cursors ("o<offset>"). */
function paged<T>(items: T[], query: URLSearchParams, defaultLimit: number): { items: T[]; cursor: string | null } {
  const limit = Number(query.get("limit") ?? defaultLimit);
  const offset = Number((query.get("cursor") ?? "o0").slice(1));
  const slice = items.slice(offset, offset + limit);
  return { items: slice, cursor: offset + limit < items.length ? `o${offset + limit}` : null };
}

export function fakeUnipile(opts: {
  apiKey: string;
  host?: string;
  respond?: (req: FakeUnipileRequest, state: FakeUnipileState) => FakeUnipileAnswer | undefined;
  state?: Partial<Omit<FakeUnipileState, "apiKey">>;
}): FakeUnipile {
  const state: FakeUnipileState = {
    apiKey: opts.apiKey,
    profiles: opts.state?.profiles ?? new Map(),
    invitations: opts.state?.invitations ?? [],
    relations: opts.state?.relations ?? [],
    chats: opts.state?.chats ?? [],
  };
  const requests: FakeUnipileRequest[] = [];
  const inFlight = new Map<string, number>();
  const maxInFlightPerAccount = new Map<string, number>();
  let total = 0;
  let maxTotal = 0;

  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const raw = new Request(input, init);
    const url = new URL(raw.url);
    if (opts.host !== undefined && url.host !== opts.host) throw new TypeError(`unexpected host ${url.host}`);
    if (!url.pathname.startsWith(`${FAKE_UNIPILE_ROOT}/`)) {
      return Response.json({ title: "Not found", type: "errors/resource_not_found", status: 404 }, { status: 404 });
    }
    const type = raw.headers.get("content-type") ?? "";
    let form: FormData | null = null;
    let text = "";
    if (type.startsWith("multipart/form-data")) form = await raw.formData();
    else text = await raw.text();
    let json: Record<string, unknown> | null = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch { /* not JSON */ }
    const req: FakeUnipileRequest = {
      method: raw.method,
      path: url.pathname.slice(FAKE_UNIPILE_ROOT.length),
      query: url.searchParams,
      headers: raw.headers,
      json,
      form,
      text,
    };
    requests.push(req);

    const account = String(req.query.get("account_id") ?? json?.account_id ?? form?.get("account_id") ?? "");
    inFlight.set(account, (inFlight.get(account) ?? 0) + 1);
    maxInFlightPerAccount.set(account, Math.max(maxInFlightPerAccount.get(account) ?? 0, inFlight.get(account)!));
    maxTotal = Math.max(maxTotal, ++total);
    try {
      const answer = req.headers.get("x-api-key") !== state.apiKey
        ? unipileError(401, "missing_credentials", "Unauthorized")
        : opts.respond?.(req, state) ?? fromState(req, state);
      if (answer === "hang") {
        return await new Promise<Response>((_, reject) => {
          const signal = init?.signal;
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener("abort", () => reject(signal.reason));
        });
      }
      if (answer === "drop") {
        throw new TypeError("fetch failed", {
          cause: new Error(
            `error sending request for ${url.href} (X-API-KEY: ${state.apiKey}): client error (SendRequest): connection closed before message completed`,
          ),
        });
      }
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      return Response.json(answer.body ?? {}, { status: answer.status, headers: answer.headers });
    } finally {
      inFlight.set(account, inFlight.get(account)! - 1);
      total--;
    }
  };
  return { fetch: f as typeof fetch, requests, state, maxInFlightPerAccount, maxInFlight: () => maxTotal };
}

/** What a faithful-enough Unipile answers from the state. */
export function fromState(req: FakeUnipileRequest, state: FakeUnipileState): FakeUnipileAnswer {
  const { method, path } = req;
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);

  if (method === "GET" && path === "/users/relations") {
    return { status: 200, body: { object: "UserRelationsList", ...paged(state.relations, req.query, 100) } };
  }
  if (method === "GET" && path === "/users/invite/sent") {
    const items = [...state.invitations].reverse().map((i) => ({ object: "InvitationSent", ...i }));
    return { status: 200, body: { object: "InvitationList", ...paged(items, req.query, 100) } };
  }
  if (method === "POST" && path === "/users/invite") {
    const providerId = String(req.json?.provider_id ?? "");
    if (state.invitations.some((i) => i.invited_user_id === providerId)) return unipileError(422, "already_invited_recently");
    const publicId = [...state.profiles].find(([, p]) => p === providerId)?.[0] ?? null;
    const id = nextId("inv");
    state.invitations.push({ id, invited_user_id: providerId, invited_user_public_id: publicId, date: new Date().toISOString() });
    return { status: 200, body: { object: "UserInvitationSent", invitation_id: id } };
  }
  if (method === "GET" && parts[0] === "users" && parts.length === 2) {
    const providerId = state.profiles.get(parts[1]);
    if (providerId === undefined) return unipileError(404, "resource_not_found", "Resource not found");
    return { status: 200, body: { object: "UserProfile", provider_id: providerId, public_identifier: parts[1] } };
  }
  if (method === "POST" && path === "/chats") {
    const attendee = String(req.form?.get("attendees_ids") ?? "");
    const text = String(req.form?.get("text") ?? "");
    const chat: FakeChat = { id: nextId("chat"), attendee_provider_id: attendee, messages: [] };
    const messageId = nextId("msg");
    chat.messages.push({ id: messageId, text, is_sender: 1, timestamp: new Date().toISOString() });
    state.chats.push(chat);
    return { status: 201, body: { object: "ChatStarted", chat_id: chat.id, message_id: messageId } };
  }
  if (parts[0] === "chats" && parts.length === 3 && parts[2] === "messages") {
    const chat = state.chats.find((c) => c.id === parts[1]);
    if (chat === undefined) return unipileError(404, "resource_not_found", "Chat not found");
    if (method === "POST") {
      const id = nextId("msg");
      chat.messages.push({ id, text: String(req.form?.get("text") ?? ""), is_sender: 1, timestamp: new Date().toISOString() });
      return { status: 201, body: { object: "MessageSent", message_id: id } };
    }
    const after = req.query.get("after");
    const items = [...chat.messages].reverse()
      .filter((m) => after === null || Date.parse(m.timestamp) > Date.parse(after))
      .map((m) => ({ object: "Message", chat_id: chat.id, ...m }));
    return { status: 200, body: { object: "MessageList", ...paged(items, req.query, 50) } };
  }
  if (method === "GET" && path === "/chats") {
    const after = req.query.get("after");
    const items = [...state.chats].reverse()
      .filter((c) => after === null || c.messages.some((m) => Date.parse(m.timestamp) > Date.parse(after)))
      .map((c) => ({ object: "Chat", id: c.id, attendee_provider_id: c.attendee_provider_id, timestamp: c.messages.at(-1)?.timestamp ?? null }));
    return { status: 200, body: { object: "ChatList", ...paged(items, req.query, 50) } };
  }
  return unipileError(404, "resource_not_found", `no route ${method} ${path}`);
}
