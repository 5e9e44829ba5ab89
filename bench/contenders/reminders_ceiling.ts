// W2 HTTP-only ceiling: C concurrent callers make the same sends Duework makes, no database.
// Request i (1..N): odd → a form POST to the fake Twilio's Messages.json (the WhatsApp template,
// To = phone (i + 1) / 2), even → a JSON POST to the fake Resend's /emails with its own
// Idempotency-Key, so both providers are busy at once, as in Duework's run. Each provider gets a
// node:http keep-alive agent of C sockets. Runs in the peer worker (bench/peer_worker.ts).
import http from "node:http";
import { Buffer } from "node:buffer";
import type { DrainTracker, PeerHandle, PeerSpec } from "../peer_support.ts";

export interface RemindersSpec {
  twilioUrl: string;
  resendUrl: string;
  accountSid: string;
  authToken: string;
  whatsappFrom: string;
  contentSid: string;
  statusCallback: string;
  resendKey: string;
  resendFrom: string;
}

export function describe(c: number): string {
  return `${c} concurrent callers, N/2 form POSTs to the fake Twilio Messages.json (WhatsApp template, StatusCallback set, ` +
    "callbacks off at the fake) interleaved with N/2 JSON POSTs to the fake Resend /emails (distinct Idempotency-Keys), " +
    `keep-alive agents of ${c} sockets per provider, no database`;
}

const phoneOf = (i: number) => `+1555${String(i).padStart(7, "0")}`;

function postOnce(agent: http.Agent, url: URL, headers: Record<string, string>, body: string, expect: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent,
      timeout: 10_000,
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)), accept: "application/json" },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        if (res.statusCode !== expect) {
          return reject(new Error(`${url.pathname} answered HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").slice(0, 200)}`));
        }
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${url.pathname} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

export function prepare(spec: PeerSpec, tracker: DrainTracker): Promise<PeerHandle> {
  const { n, c } = spec;
  const r = spec.reminders!;
  const twilioUrl = new URL(`${r.twilioUrl}/2010-04-01/Accounts/${r.accountSid}/Messages.json`);
  const resendUrl = new URL(`${r.resendUrl}/emails`);
  const twilioAgent = new http.Agent({ keepAlive: true, maxSockets: c });
  const resendAgent = new http.Agent({ keepAlive: true, maxSockets: c });
  const basic = "Basic " + Buffer.from(`${r.accountSid}:${r.authToken}`).toString("base64");
  let next = 1;
  let calls = 0;
  let errors = 0;
  let firstError: string | null = null;
  let running: Promise<unknown> | null = null;

  function send(i: number): Promise<void> {
    const k = Math.ceil(i / 2);
    calls++;
    if (i % 2 === 1) {
      const body = new URLSearchParams({
        To: `whatsapp:${phoneOf(k)}`,
        From: `whatsapp:${r.whatsappFrom}`,
        ContentSid: r.contentSid,
        ContentVariables: JSON.stringify({
          "1": `w2-bench client ${k}`,
          "2": "Thursday, 3 December 2026 at 19:00 GMT",
          "3": `w2-bench performer ${1 + (k % 50)}`,
          "4": `BK-${String(k).padStart(6, "0")}`,
        }),
        StatusCallback: r.statusCallback,
      }).toString();
      return postOnce(twilioAgent, twilioUrl, { authorization: basic, "content-type": "application/x-www-form-urlencoded" }, body, 201);
    }
    const ref = `BK-${String(k).padStart(6, "0")}`;
    const when = "Thursday, 3 December 2026 at 19:00 GMT";
    const performer = `w2-bench performer ${1 + (k % 50)}`;
    const body = JSON.stringify({
      from: r.resendFrom,
      to: `w2-${k}@example.test`,
      subject: `Reminder: ${performer} on ${when} (${ref})`,
      html: `<p>Hi w2-bench client ${k},</p>\n<p>A reminder: ${performer} performs for you on ${when}.</p>\n<p>Booking ${ref}</p>`,
      text: `Hi w2-bench client ${k},\n\nA reminder: ${performer} performs for you on ${when}.\n\nBooking ${ref}`,
      tags: [{ name: "kind", value: "event_reminder" }, { name: "notification_id", value: String(i) }],
    });
    return postOnce(resendAgent, resendUrl, {
      authorization: `Bearer ${r.resendKey}`,
      "content-type": "application/json",
      "idempotency-key": `event_reminder:${k}:email`,
    }, body, 200);
  }

  async function caller() {
    while (next <= n) {
      const i = next++;
      try {
        await send(i);
        tracker.record(i);
      } catch (err) {
        // No retry: a repeated Twilio POST would be a second message.
        errors += 1;
        firstError ??= (err as Error).message;
      }
    }
  }

  return Promise.resolve({
    start() {
      const t0 = Date.now();
      running = Promise.all(Array.from({ length: c }, caller));
      return Promise.resolve({ t0, enqueueMs: null, enqueued: n });
    },
    async stop() {
      await running;
      twilioAgent.destroy();
      resendAgent.destroy();
      return { errors, firstError, httpCalls: calls };
    },
  });
}
