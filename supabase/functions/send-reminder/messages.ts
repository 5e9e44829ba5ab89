// What a reminder says: the email (subject, text, html) per kind, and the WhatsApp template
// variables (ContentVariables) of the two templates in bookings.whatsapp_templates. Dates are the
// event's local time in the booking's time_zone (Intl.DateTimeFormat); amounts are in the
// currency's minor units (balance_due 15000 GBP = £150.00, Intl.NumberFormat's fraction digits of
// the currency). Every value interpolated into HTML is escaped (_shared/email_html.ts).

import { htmlEmail, oneLine } from "../_shared/email_html.ts";

export { escapeHtml } from "../_shared/email_html.ts";

export type ReminderKind = "event_reminder" | "balance_reminder" | "booking_cancelled";

export interface Booking {
  id: number;
  reference: string;
  client_name: string;
  performer_name: string;
  /** ISO 8601 instant. */
  event_at: string;
  /** IANA zone, e.g. Europe/London. */
  time_zone: string;
  /** Minor units of `currency`. */
  balance_due: number | null;
  /** ISO 4217, e.g. GBP. */
  currency: string | null;
  cancel_reason: string | null;
}

export interface Email {
  subject: string;
  text: string;
  html: string;
}

/** The booking cannot be rendered (unknown time zone or currency, no balance…): the same data
 * fails the same way on every attempt. */
export class RenderError extends Error {
  override name = "RenderError";
}

/** One language for now; dates and amounts follow its conventions. */
export const LOCALE = "en-GB";

const dateTimeFormats = new Map<string, Intl.DateTimeFormat>();
const dateFormats = new Map<string, Intl.DateTimeFormat>();
const moneyFormats = new Map<string, Intl.NumberFormat>();

function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    cache.set(key, value);
  }
  return value;
}

function eventInstant(b: Booking): Date {
  const at = new Date(b.event_at);
  if (Number.isNaN(at.getTime())) throw new RenderError(`event_at is not a date: ${JSON.stringify(b.event_at)}`);
  return at;
}

function formatter<T>(what: string, value: string, make: () => T): T {
  try {
    return make();
  } catch (err) {
    throw new RenderError(`unknown ${what} ${JSON.stringify(value)} (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** "Thursday, 3 December 2026 at 19:00 GMT" in the booking's time zone. */
export function eventDateTime(b: Booking): string {
  const f = cached(dateTimeFormats, b.time_zone, () =>
    formatter("time_zone", b.time_zone, () =>
      new Intl.DateTimeFormat(LOCALE, {
        timeZone: b.time_zone,
        weekday: "long",
        day: "numeric",
        month: "long",
        year: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        timeZoneName: "short",
      })));
  return f.format(eventInstant(b));
}

/** "Thursday, 3 December 2026" in the booking's time zone. */
export function eventDate(b: Booking): string {
  const f = cached(dateFormats, b.time_zone, () =>
    formatter("time_zone", b.time_zone, () =>
      new Intl.DateTimeFormat(LOCALE, { timeZone: b.time_zone, weekday: "long", day: "numeric", month: "long", year: "numeric" })));
  return f.format(eventInstant(b));
}

/** balance_due (minor units) in its currency: 15000 GBP → "£150.00", 5000 JPY → "JP¥5,000". */
export function balanceAmount(b: Booking): string {
  if (b.balance_due === null || !Number.isSafeInteger(b.balance_due)) throw new RenderError("the booking has no balance_due");
  if (b.currency === null || !/^[A-Za-z]{3}$/.test(b.currency)) throw new RenderError(`unknown currency ${JSON.stringify(b.currency)}`);
  const currency = b.currency.toUpperCase();
  const f = cached(moneyFormats, currency, () => formatter("currency", currency, () => new Intl.NumberFormat(LOCALE, { style: "currency", currency })));
  const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
  return f.format(b.balance_due / 10 ** digits);
}

/** Paragraphs of plain text, each a list of parts. */
type Paragraph = string[];

function build(subject: string, paragraphs: Paragraph[]): Email {
  const joined = paragraphs.map((p) => p.join(""));
  return { subject: oneLine(subject), text: joined.join("\n\n") + "\n", html: htmlEmail(subject, joined) };
}

export function renderEmail(kind: ReminderKind, b: Booking): Email {
  const client = oneLine(b.client_name);
  const performer = oneLine(b.performer_name);
  const ref = oneLine(b.reference);
  switch (kind) {
    case "event_reminder": {
      const when = eventDateTime(b);
      return build(`Reminder: ${performer} on ${when} (${ref})`, [
        [`Hi ${client},`],
        [`A reminder: ${performer} performs for you on ${when}.`],
        [`Booking ${ref}`],
      ]);
    }
    case "balance_reminder": {
      const amount = balanceAmount(b);
      const day = eventDate(b);
      return build(`Balance of ${amount} due for your event on ${day} (${ref})`, [
        [`Hi ${client},`],
        [`The balance of ${amount} for your event with ${performer} on ${day} is due.`],
        [`Booking ${ref}`],
      ]);
    }
    case "booking_cancelled": {
      const when = eventDateTime(b);
      const reason = b.cancel_reason ? oneLine(b.cancel_reason) : "";
      return build(`Booking ${ref} cancelled`, [
        [`Hi ${client},`],
        [`Your booking of ${performer} on ${when} has been cancelled.`],
        ...(reason ? [[`Reason: ${reason}`]] : []),
        [`Booking ${ref}`],
      ]);
    }
  }
}

/** ContentVariables of the kind's WhatsApp template, or null when the kind has none (only
 * event_reminder and balance_reminder have a template). WhatsApp refuses variables with newlines
 * or tabs, so every value is one line. */
export function whatsappVariables(kind: ReminderKind, b: Booking): Record<string, string> | null {
  switch (kind) {
    case "event_reminder":
      return { "1": oneLine(b.client_name), "2": eventDateTime(b), "3": oneLine(b.performer_name), "4": oneLine(b.reference) };
    case "balance_reminder":
      return { "1": oneLine(b.client_name), "2": balanceAmount(b), "3": eventDate(b), "4": oneLine(b.reference) };
    case "booking_cancelled":
      return null;
  }
}
