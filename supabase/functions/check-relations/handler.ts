// check-relations: the twice-daily acceptance check of LinkedIn invitations (job
// outreach-relations; docs/outreach.md). One task per LinkedIn account with invited prospects.
//
//   POST {"job","batch_id","tasks":[{"id","lease_token","attempt","payload":{"account_id"}}]}
//
// Context (read under the lease): {account: {id, unipile_account_id}, pending: [{prospect_id,
// provider_id, public_identifier}], pause_keys: {account}}. The function pages
// GET /users/relations?account_id&limit=1000&cursor until the cursor is null, every pending
// prospect was found, 50 pages were read, or the paging budget (90 s) is spent, and answers
//
//   ok       {accepted: [prospect_id…], checked: <relations read>, pages, complete}
//            (complete: false when it stopped at the page cap, the budget or a repeated cursor
//            with prospects still unfound; what it found is reported all the same)
//   401 disconnected_account / invalid_credentials / expired_credentials → discard {account_error}
//   429 → retry after Retry-After (else 60 s), pause pause_keys.account
//   5xx → retry after 60 s (or a longer Retry-After), pause pause_keys.account
//   timeout, connection error, unreadable page → retry (the job's backoff)
//   other 4xx → dead {error_type}; API key refused, UNIPILE_* unset → release
//
// A relation matches a pending prospect on the provider id (the relation's member_id or
// provider_id: UNVERIFIED which form member_id has, so both are compared) or on the public
// identifier (case- and percent-encoding-insensitive; from public_profile_url when the field is
// missing). The job runner keeps the batch's leases alive while the pages are read
// (jobs.keep_batch_alive every lease_seconds / 3, _shared/batch_lease.ts), so a long paging does
// not lose its lease. The API key never appears in responses, stored errors or logs.

import { z } from "npm:zod@4";
import { type FetchFn } from "../_shared/http.ts";
import { type JobFunction, type RunnerDeps, serveJob } from "../_shared/job_runner.ts";
import type { Outcome } from "../_shared/outcome.ts";
import {
  isFailure,
  normalizePublicIdentifier,
  RELATIONS_MAX_LIMIT,
  type UnipileFailure,
  unipileFromEnv,
  type UnipileSetup,
  unipileWaitSeconds,
} from "../_shared/providers/unipile.ts";

export const MAX_PAGES = 50;
/** A page of 1,000 relations is read from LinkedIn by Unipile while we wait. */
export const RELATIONS_TIMEOUT_MS = 30_000;
/** Paging stops after this long and reports what it found (Edge wall clock: 150 s free). */
export const PAGING_BUDGET_MS = 90_000;

const id = z.number().int().positive();
const nonEmpty = z.string().trim().min(1);

export const CheckRelationsPayloadSchema = z.object({
  account_id: id,
  // Moved off the payload by a trigger; accepted when present.
  rate_keys: z.array(z.string()).optional(),
});
export type CheckRelationsPayload = z.output<typeof CheckRelationsPayloadSchema>;

export const CheckRelationsContextSchema = z.object({
  account: z.object({ id, unipile_account_id: nonEmpty }),
  pending: z.array(z.object({
    prospect_id: id,
    provider_id: nonEmpty.nullable().default(null),
    public_identifier: nonEmpty.nullable().default(null),
  })),
  pause_keys: z.object({ account: nonEmpty }),
});
export type CheckRelationsContext = z.output<typeof CheckRelationsContextSchema>;

export interface HandlerDeps extends RunnerDeps {
  fetch?: FetchFn;
  /** Deadline of one relations page; 30 s by default. */
  timeoutMs?: number;
  /** How long one account's paging may take; 90 s by default. */
  pagingBudgetMs?: number;
}

interface Session {
  unipile: UnipileSetup;
  /** Set once Unipile refused the API key. */
  released: string | null;
  calls: number;
  relationsRead: number;
  accepted: number;
}

export function checkRelationsJob(deps: HandlerDeps): JobFunction<CheckRelationsPayload, CheckRelationsContext, Session> {
  const now = deps.now ?? Date.now;
  const budgetMs = deps.pagingBudgetMs ?? PAGING_BUDGET_MS;

  return {
    name: "check-relations",
    payload: CheckRelationsPayloadSchema,
    context: CheckRelationsContextSchema,
    session: () => {
      const s: Session = { unipile: { ok: false, configError: "" }, released: null, calls: 0, relationsRead: 0, accepted: 0 };
      s.unipile = unipileFromEnv(deps.env, {
        fetch: deps.fetch ?? fetch,
        timeoutMs: deps.timeoutMs ?? RELATIONS_TIMEOUT_MS,
        now,
        onRequest: () => s.calls++,
      });
      return s;
    },
    secrets: (_task, s) => (s.unipile.ok ? s.unipile.secrets : []),
    serialize: (task) => `account:${task.context.account.id}`,
    tagsField: "relations",
    counters: (s) => ({ checked: 0, unipile_calls: s.calls, relations_read: s.relationsRead, accepted: s.accepted }),

    async perform(task, s) {
      const c = task.context;
      if (c.account.id !== task.payload.account_id) {
        return { outcome: "retry", error: `context account ${c.account.id} does not match the payload's ${task.payload.account_id}` };
      }
      if (!s.unipile.ok) return { outcome: "release", error: s.unipile.configError };
      if (s.released !== null) return { outcome: "release", error: s.released };
      const client = s.unipile.client;

      // Indexes of what is still pending; a prospect with neither identifier can never be found.
      const byProvider = new Map<string, number[]>();
      const byPublic = new Map<string, number[]>();
      const add = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
      const findable = new Set<number>();
      for (const p of c.pending) {
        const pub = normalizePublicIdentifier(p.public_identifier);
        if (p.provider_id !== null) add(byProvider, p.provider_id, p.prospect_id);
        if (pub !== null) add(byPublic, pub, p.prospect_id);
        if (p.provider_id !== null || pub !== null) findable.add(p.prospect_id);
      }
      const accepted = new Set<number>();
      const started = now();
      let checked = 0;
      let pages = 0;
      let cursor: string | null = null;
      let complete = findable.size === 0;

      while (!complete) {
        if (pages >= MAX_PAGES || (pages > 0 && now() - started >= budgetMs)) break;
        const r = await client.listRelations({ accountId: c.account.unipile_account_id, cursor, limit: RELATIONS_MAX_LIMIT });
        if (isFailure(r)) return failed(s, c, r, pages);
        pages++;
        checked += r.items.length;
        s.relationsRead += r.items.length;
        for (const rel of r.items) {
          const hits = [
            ...(rel.providerId !== null ? byProvider.get(rel.providerId) ?? [] : []),
            ...(rel.memberId !== null && rel.memberId !== rel.providerId ? byProvider.get(rel.memberId) ?? [] : []),
            ...(byPublic.get(normalizePublicIdentifier(rel.publicIdentifier) ?? "") ?? []),
          ];
          for (const h of hits) accepted.add(h);
        }
        if (r.cursor === null || [...findable].every((p) => accepted.has(p))) complete = true;
        else if (r.cursor === cursor) break; // a cursor that does not move would page forever
        else cursor = r.cursor;
      }

      s.accepted += accepted.size;
      return {
        outcome: "ok",
        data: { accepted: c.pending.map((p) => p.prospect_id).filter((p) => accepted.has(p)), checked, pages, complete },
        tag: "checked",
      };
    },
  };

  function failed(s: Session, c: CheckRelationsContext, r: UnipileFailure, pages: number): Outcome {
    const where = pages > 0 ? ` (relations page ${pages + 1})` : "";
    switch (r.kind) {
      case "account_disconnected":
        return {
          outcome: "discard",
          error: `LinkedIn account ${c.account.id} (${c.account.unipile_account_id}) needs reconnection: ${r.error}`,
          data: { account_error: r.type },
          tag: "needs_reconnect",
        };
      case "misconfigured":
        s.released = r.error;
        return { outcome: "release", error: r.error };
      case "rate_limited":
        return { outcome: "retry", error: `${r.error}${where}`, after: unipileWaitSeconds(r), pause: c.pause_keys.account };
      case "server_error":
        return {
          outcome: "retry",
          error: `${r.error}${where}`,
          after: unipileWaitSeconds(r),
          pause: c.pause_keys.account,
        };
      case "transient":
      case "unknown_outcome":
      case "limit_exceeded":
        return { outcome: "retry", error: `${r.error}${where}`, after: null };
      case "already":
      case "refused":
        return { outcome: "dead", error: `${r.error}${where}`, data: { error_type: r.type } };
    }
  }
}

export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return serveJob(checkRelationsJob(deps), deps);
}
