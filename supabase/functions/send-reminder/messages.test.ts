import assert from "node:assert/strict";
import { balanceAmount, type Booking, escapeHtml, eventDate, eventDateTime, RenderError, renderEmail, whatsappVariables } from "./messages.ts";

const BOOKING: Booking = {
  id: 42,
  reference: "BK-000042",
  client_name: "Ana",
  performer_name: "The Jazz Trio",
  event_at: "2026-12-03T19:00:00Z",
  time_zone: "Europe/London",
  balance_due: 15000,
  currency: "GBP",
  cancel_reason: null,
};

Deno.test("messages: dates are the event's local time in the booking's zone (DST included)", () => {
  assert.equal(eventDateTime(BOOKING), "Thursday, 3 December 2026 at 19:00 GMT");
  assert.equal(eventDateTime({ ...BOOKING, event_at: "2026-07-03T19:00:00Z" }), "Friday, 3 July 2026 at 20:00 BST");
  // 01:30 UTC on the 4th is still the 3rd in New York.
  const ny = { ...BOOKING, event_at: "2026-12-04T01:30:00Z", time_zone: "America/New_York" };
  assert.equal(eventDate(ny), "Thursday, 3 December 2026");
  assert.match(eventDateTime(ny), /^Thursday, 3 December 2026 at 20:30 /);
});

Deno.test("messages: amounts are minor units of the currency", () => {
  assert.equal(balanceAmount(BOOKING), "£150.00");
  assert.equal(balanceAmount({ ...BOOKING, balance_due: 5000, currency: "JPY" }), "JP¥5,000");
  assert.equal(balanceAmount({ ...BOOKING, balance_due: 12345, currency: "KWD" }), "KWD\u00a012.345");
  assert.equal(balanceAmount({ ...BOOKING, balance_due: 199, currency: "eur" }), "€1.99");
  assert.throws(() => balanceAmount({ ...BOOKING, balance_due: null }), RenderError);
  assert.throws(() => balanceAmount({ ...BOOKING, currency: "XX" }), RenderError);
  assert.throws(() => eventDate({ ...BOOKING, time_zone: "Nowhere/Else" }), RenderError);
  assert.throws(() => eventDate({ ...BOOKING, event_at: "soon" }), RenderError);
});

Deno.test("messages: every kind renders subject, text and html; every value in the html is escaped", () => {
  const hostile = { ...BOOKING, client_name: `<img src=x onerror="alert(1)">`, performer_name: "Tom & Jerry's", cancel_reason: "Venue <closed>" };
  for (const kind of ["event_reminder", "balance_reminder", "booking_cancelled"] as const) {
    const e = renderEmail(kind, hostile);
    assert.ok(e.subject.length > 0 && !/[\r\n]/.test(e.subject), kind);
    assert.doesNotMatch(e.html, /<img|Jerry's|<closed>/, kind);
    assert.match(e.html, /&lt;img src=x onerror=&quot;alert\(1\)&quot;&gt;/, kind);
    assert.match(e.html, /Tom &amp; Jerry&#39;s/, kind);
    assert.match(e.text, /<img src=x onerror="alert\(1\)">/, "text is not escaped");
    assert.match(e.text, /Booking BK-000042/);
  }
  const cancelled = renderEmail("booking_cancelled", hostile);
  assert.equal(cancelled.subject, "Booking BK-000042 cancelled");
  assert.match(cancelled.text, /Reason: Venue <closed>/);
  assert.match(cancelled.html, /Reason: Venue &lt;closed&gt;/);
  assert.doesNotMatch(renderEmail("booking_cancelled", BOOKING).text, /Reason/);
  assert.equal(escapeHtml(`&<>"'`), "&amp;&lt;&gt;&quot;&#39;");
  assert.equal(renderEmail("event_reminder", { ...BOOKING, performer_name: "A\r\nBcc: x@y" }).subject.includes("\n"), false);
});

Deno.test("messages: WhatsApp ContentVariables per template (bookings.whatsapp_templates), one line each", () => {
  assert.deepEqual(whatsappVariables("event_reminder", BOOKING), {
    "1": "Ana",
    "2": "Thursday, 3 December 2026 at 19:00 GMT",
    "3": "The Jazz Trio",
    "4": "BK-000042",
  });
  assert.deepEqual(whatsappVariables("balance_reminder", BOOKING), {
    "1": "Ana",
    "2": "£150.00",
    "3": "Thursday, 3 December 2026",
    "4": "BK-000042",
  });
  assert.equal(whatsappVariables("booking_cancelled", BOOKING), null);
  assert.equal(whatsappVariables("event_reminder", { ...BOOKING, client_name: "Ana\n\tMaria" })!["1"], "Ana Maria");
});
