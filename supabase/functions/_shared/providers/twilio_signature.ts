// X-Twilio-Signature (provider-contracts §4 StatusCallback): base64 of HMAC-SHA1, keyed by the
// account's auth token, over the full URL Twilio requested followed by every POST parameter's
// name and value, names sorted. This is the legacy auth-token scheme Twilio uses for status
// callbacks; the same computation as the official SDK's getExpectedTwilioSignature (the tests
// prove it against the SDK). Repeated names contribute each distinct value once, sorted, as in the SDK.
//
// The URL must be the one Twilio was given (the StatusCallback we sent), not the URL the
// function sees: behind the hosted gateway req.url has another host and path. Like the SDK,
// verification also accepts the URL with the default port added or removed, since Twilio may
// sign either form.

import { createHmac, timingSafeEqual } from "node:crypto";

export const TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature";

export type SignedParams = URLSearchParams | Record<string, string | readonly string[]>;

function grouped(params: SignedParams): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (k: string, v: string) => {
    const list = out.get(k);
    if (list === undefined) out.set(k, [v]);
    else list.push(v);
  };
  if (params instanceof URLSearchParams) {
    for (const [k, v] of params) add(k, v);
  } else {
    for (const [k, v] of Object.entries(params)) {
      if (typeof v === "string") add(k, v);
      else for (const x of v) add(k, x);
    }
  }
  return out;
}

/** The signature Twilio sends for a request to `url` with these form parameters. */
export function twilioSignature(authToken: string, url: string, params: SignedParams): string {
  const byName = grouped(params);
  let data = url;
  for (const name of [...byName.keys()].sort()) {
    for (const value of [...new Set(byName.get(name)!)].sort()) data += name + value;
  }
  return createHmac("sha1", authToken).update(data, "utf8").digest("base64");
}

/** scheme://authority and the rest, without normalizing (Twilio signs the exact characters). */
function splitUrl(url: string): { scheme: string; userInfo: string; host: string; port: string; rest: string } | null {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i.exec(url);
  if (!m) return null;
  const [prefix, scheme, authority] = m;
  const at = authority.lastIndexOf("@");
  const hostAndPort = authority.slice(at + 1);
  const colon = hostAndPort.indexOf(":", hostAndPort.lastIndexOf("]") + 1);
  return {
    scheme,
    userInfo: authority.slice(0, at + 1),
    host: colon === -1 ? hostAndPort : hostAndPort.slice(0, colon),
    port: colon === -1 ? "" : hostAndPort.slice(colon),
    rest: url.slice(prefix.length),
  };
}

/** The URL as given, without its port, and with the scheme's default port. */
function urlVariants(url: string): string[] {
  const p = splitUrl(url);
  if (p === null) return [url];
  const withoutPort = p.scheme + p.userInfo + p.host + p.rest;
  const withPort = p.port ? url : p.scheme + p.userInfo + p.host + (p.scheme.toLowerCase() === "https://" ? ":443" : ":80") + p.rest;
  return [...new Set([url, withoutPort, withPort])];
}

function equalInConstantTime(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  // The expected length is fixed by SHA-1 (28 base64 characters) and not secret.
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Whether `signature` (the X-Twilio-Signature header) is Twilio's for this URL and body. */
export function verifyTwilioSignature(
  authToken: string,
  signature: string | null | undefined,
  url: string,
  params: SignedParams,
): boolean {
  if (!authToken || !signature) return false;
  const given = signature.trim();
  let ok = false;
  // Every variant is computed and compared, so the time taken does not say which one matched.
  for (const candidate of urlVariants(url)) {
    if (equalInConstantTime(given, twilioSignature(authToken, candidate, params))) ok = true;
  }
  return ok;
}
