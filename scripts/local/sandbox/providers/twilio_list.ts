// GET /2010-04-01/Accounts/{sid}/Messages.json: the list a client reads to reconcile an
// ambiguous send ("did Twilio take it?") by To + DateSent>=since, with Twilio's paging envelope
// (messages, page, page_size, start, end, uri, first/next/previous_page_uri). Newest first.
//
// Twilio's inequality filters are spelt DateSent>=X / DateSent<=X, i.e. the query KEY is
// "DateSent>" or "DateSent<" (twilio-node sends dateSentAfter as DateSent%3E=<ISO date-time>).
// Docs: a YYYY-MM-DD date means "on or after / on or before midnight of that date (GMT)"; the
// SDK sends full date-times, which the fake honours to the second (UNVERIFIED that Twilio
// does more than compare dates).

import { err, type TwilioErrorSpec } from "./twilio_errors.ts";
import { API_VERSION, messageJson } from "./twilio_message.ts";
import type { TwilioMessage, TwilioState } from "./twilio_state.ts";

const DAY_MS = 86_400_000;
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;
const FILTER_KEYS = ["To", "From", "DateSent", "DateSent<", "DateSent>"] as const;

interface DateBound {
  ms: number;
  dateOnly: boolean;
}

function parseDate(value: string): DateBound | null {
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (day) {
    const ms = Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]));
    return Number.isNaN(ms) ? null : { ms, dateOnly: true };
  }
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value)) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : { ms, dateOnly: false };
}

const startOfDay = (ms: number) => ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS);

/**
 * The time a DateSent filter compares: date_sent, or date_created for a message not sent yet
 * (what Twilio does with unsent messages is UNVERIFIED; a reconcile right after an ambiguous
 * send must still find a message that is only queued).
 */
const sentOrCreated = (m: TwilioMessage) => m.date_sent ?? m.date_created;

type Predicate = (m: TwilioMessage) => boolean;

function filters(query: URLSearchParams): Predicate[] | TwilioErrorSpec {
  const out: Predicate[] = [];
  const to = query.get("To");
  if (to !== null) out.push((m) => m.to === to);
  const from = query.get("From");
  if (from !== null) out.push((m) => m.from === from);
  for (const key of ["DateSent", "DateSent>", "DateSent<"] as const) {
    const raw = query.get(key);
    if (raw === null) continue;
    const bound = parseDate(raw);
    if (bound === null) return err.invalidParameter(key);
    if (key === "DateSent") {
      // Messages sent on that (UTC) day; a date-time selects its day (UNVERIFIED).
      const lo = startOfDay(bound.ms);
      out.push((m) => sentOrCreated(m) >= lo && sentOrCreated(m) < lo + DAY_MS);
    } else if (key === "DateSent>") {
      out.push((m) => sentOrCreated(m) >= bound.ms);
    } else {
      // "On or before" a date includes that whole day.
      const hi = bound.dateOnly ? bound.ms + DAY_MS : bound.ms + 1000; // seconds resolution
      out.push((m) => sentOrCreated(m) < hi);
    }
  }
  return out;
}

function intParam(query: URLSearchParams, key: string, def: number, min: number, max: number): number | null {
  const raw = query.get(key);
  if (raw === null || raw === "") return def;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : null;
}

export function listMessages(
  state: TwilioState,
  query: URLSearchParams,
): { body: Record<string, unknown> } | TwilioErrorSpec {
  const preds = filters(query);
  if (!Array.isArray(preds)) return preds;
  const pageSize = intParam(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE);
  if (pageSize === null) return err.invalidParameter("PageSize");
  const page = intParam(query, "Page", 0, 0, Number.MAX_SAFE_INTEGER);
  if (page === null) return err.invalidParameter("Page");

  const all = [...state.messages.values()].reverse().filter((m) => preds.every((p) => p(m)));

  // PageToken PA<sid> = the page after that message, PB<sid> = the page before it (the shape
  // of Twilio's tokens; their content is opaque to clients). Without one, Page * PageSize.
  let start = page * pageSize;
  const token = query.get("PageToken");
  if (token !== null && token.length > 2) {
    const i = all.findIndex((m) => m.sid === token.slice(2));
    if (i >= 0) start = token.startsWith("PB") ? Math.max(0, i - pageSize) : i + 1;
  }
  const items = all.slice(start, start + pageSize);

  const base = `/${API_VERSION}/Accounts/${state.accountSid}/Messages.json`; // an authorized request
  const uri = (p: number, pageToken?: string) => {
    const q = new URLSearchParams();
    for (const key of FILTER_KEYS) {
      const v = query.get(key);
      if (v !== null) q.set(key, v);
    }
    q.set("PageSize", String(pageSize));
    q.set("Page", String(p));
    if (pageToken !== undefined) q.set("PageToken", pageToken);
    return `${base}?${q}`;
  };
  const hasNext = start + pageSize < all.length;
  return {
    body: {
      end: start + Math.max(items.length, 1) - 1,
      first_page_uri: uri(0),
      messages: items.map((m) => messageJson(m)),
      next_page_uri: hasNext ? uri(page + 1, "PA" + items[items.length - 1].sid) : null,
      page,
      page_size: pageSize,
      previous_page_uri: page > 0 && items.length > 0 ? uri(page - 1, "PB" + items[0].sid) : null,
      start,
      uri: uri(page, token ?? undefined),
    },
  };
}
