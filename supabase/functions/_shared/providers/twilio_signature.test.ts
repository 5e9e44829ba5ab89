// The signature is proven against the official SDK (devDependency `twilio`, tests only: the
// function itself never loads it).
import assert from "node:assert/strict";
import twilio from "npm:twilio@^6.3.1";
import { twilioSignature, verifyTwilioSignature } from "./twilio_signature.ts";

const TOKEN = "duework-local-twilio-auth-token";
const URL_ = "https://ref.supabase.co/functions/v1/twilio-status";

const CALLBACK = {
  MessageSid: "SM0123456789abcdef0123456789abcdef",
  SmsSid: "SM0123456789abcdef0123456789abcdef",
  MessageStatus: "delivered",
  SmsStatus: "delivered",
  AccountSid: "AC00000000000000000000000000000001",
  From: "whatsapp:+14155238886",
  To: "whatsapp:+447700900123",
  ApiVersion: "2010-04-01",
  ChannelPrefix: "whatsapp",
};

const cases: { name: string; url: string; params: Record<string, string> }[] = [
  { name: "a status callback", url: URL_, params: CALLBACK },
  { name: "a failed one with ErrorCode", url: URL_, params: { ...CALLBACK, MessageStatus: "failed", ErrorCode: "63016" } },
  { name: "a query string on the URL", url: `${URL_}?tenant=7&b=x y`, params: CALLBACK },
  { name: "no parameters", url: URL_, params: {} },
  { name: "non-ASCII values and symbols", url: URL_, params: { Body: "Olá, €15 — ok? a&b=c+d", Zeta: "", alpha: "1" } },
  { name: "Twilio's documented example", url: "https://mycompany.com/myapp.php?foo=1&bar=2", params: {
    CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212",
  } },
];

Deno.test("twilio signature: equals the official SDK's getExpectedTwilioSignature", () => {
  for (const c of cases) {
    const ours = twilioSignature(TOKEN, c.url, c.params);
    assert.equal(ours, twilio.getExpectedTwilioSignature(TOKEN, c.url, c.params), c.name);
    assert.equal(ours, twilioSignature(TOKEN, c.url, new URLSearchParams(c.params)), `${c.name}: URLSearchParams`);
    assert.match(ours, /^[A-Za-z0-9+/]{27}=$/, "base64 of 20 bytes");
  }
});

Deno.test("twilio signature: the example of Twilio's webhook security docs (auth token 12345)", () => {
  const example = cases.find((c) => c.name === "Twilio's documented example")!;
  assert.equal(twilioSignature("12345", example.url, example.params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
});

Deno.test("twilio signature: repeated names are signed like the SDK (distinct values, sorted)", () => {
  const form = new URLSearchParams([["MediaUrl", "https://b"], ["Body", "x"], ["MediaUrl", "https://a"], ["MediaUrl", "https://b"]]);
  assert.equal(
    twilioSignature(TOKEN, URL_, form),
    twilio.getExpectedTwilioSignature(TOKEN, URL_, { Body: "x", MediaUrl: ["https://b", "https://a", "https://b"] }),
  );
});

Deno.test("twilio signature: verify accepts the SDK's signatures and the SDK accepts ours", () => {
  for (const c of cases) {
    const sdk = twilio.getExpectedTwilioSignature(TOKEN, c.url, c.params);
    assert.equal(verifyTwilioSignature(TOKEN, sdk, c.url, new URLSearchParams(c.params)), true, c.name);
    assert.equal(twilio.validateRequest(TOKEN, twilioSignature(TOKEN, c.url, c.params), c.url, c.params), true, c.name);
  }
});

Deno.test("twilio signature: a URL signed with the default port (or without) verifies either way, like the SDK", () => {
  const withPort = "https://ref.supabase.co:443/functions/v1/twilio-status";
  const signedWithPort = twilio.getExpectedTwilioSignature(TOKEN, withPort, CALLBACK);
  assert.equal(verifyTwilioSignature(TOKEN, signedWithPort, URL_, CALLBACK), true);
  assert.equal(twilio.validateRequest(TOKEN, signedWithPort, URL_, CALLBACK), true);
  const signedWithout = twilio.getExpectedTwilioSignature(TOKEN, URL_, CALLBACK);
  assert.equal(verifyTwilioSignature(TOKEN, signedWithout, withPort, CALLBACK), true);
});

Deno.test("twilio signature: forged, missing, other token, other URL or changed parameter → false", () => {
  const good = twilioSignature(TOKEN, URL_, CALLBACK);
  assert.equal(verifyTwilioSignature(TOKEN, good, URL_, CALLBACK), true);
  assert.equal(verifyTwilioSignature(TOKEN, null, URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature(TOKEN, "", URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature(TOKEN, "forged", URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature(TOKEN, good.replace(/^./, (ch) => (ch === "A" ? "B" : "A")), URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature("another-auth-token-000000", good, URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature("", good, URL_, CALLBACK), false);
  assert.equal(verifyTwilioSignature(TOKEN, good, "https://evil.example/functions/v1/twilio-status", CALLBACK), false);
  assert.equal(verifyTwilioSignature(TOKEN, good, URL_, { ...CALLBACK, MessageStatus: "read" }), false);
  assert.equal(verifyTwilioSignature(TOKEN, good, URL_, { ...CALLBACK, Extra: "1" }), false);
  // SDK agrees on the forged ones.
  assert.equal(twilio.validateRequest(TOKEN, good, URL_, { ...CALLBACK, MessageStatus: "read" }), false);
});
