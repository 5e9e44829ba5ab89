// The bytes libcurl puts on the wire for one HTTP/1.1 request of pg_net's easy handle
// (lib/http.c Curl_http, Curl_add_custom_headers, Curl_http_bodysend): request line, Host,
// Accept: */*, the CURLOPT_HTTPHEADER lines exactly as given, then Content-Length and
// Content-Type for a POSTFIELDS request. No header is lower-cased, reordered or added besides
// these; libcurl sends no User-Agent, Accept-Encoding or Connection header of its own.
import { Buffer } from "node:buffer";
import type { Target } from "./http-target.ts";

/** Bodies above this size are sent after "Expect: 100-continue" (curl's EXPECT_100_THRESHOLD). */
export const EXPECT_100_THRESHOLD = 1024 * 1024;

export interface RequestHead {
  bytes: Uint8Array;
  /** The body waits for a 100 Continue (or 1 s) before it is sent. */
  expect100: boolean;
}

/** Curl_checkheaders: a custom line "Name:" or "Name;" exists (whatever its value). */
export function hasCustomHeader(lines: string[], name: string): boolean {
  const n = name.toLowerCase();
  return lines.some((l) => l.slice(0, n.length).toLowerCase() === n && (l[n.length] === ":" || l[n.length] === ";"));
}

const startsWithCI = (line: string, prefix: string) => line.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase();

/**
 * The line Curl_add_custom_headers sends for one CURLOPT_HTTPHEADER entry, or null: a line needs
 * a colon after a non-empty name and a non-blank value ("Name:" only disables curl's own header
 * of that name); "Name;" sends an empty header "Name:". A sent line is copied verbatim.
 */
export function customHeaderLine(line: string): string | null {
  const colon = line.indexOf(":");
  if (colon < 0) {
    const semi = line.indexOf(";");
    if (semi > 0 && line.slice(semi + 1).trim() === "") return `${line.slice(0, semi)}:`;
    return null;
  }
  if (colon === 0) return null;
  return /^[ \t\r\n\v\f]*$/.test(line.slice(colon + 1)) ? null : line;
}

export interface HeadOptions {
  /** Request-line method: CURLOPT_CUSTOMREQUEST, or POST/GET from the request kind. */
  method: string;
  /** The request kind is POST (POSTFIELDS / CURLOPT_POST): Content-Length and Content-Type. */
  post: boolean;
  bodyLength: number;
  headers: string[];
  /** This request follows a redirect from a different host (or port or scheme) than the first. */
  otherHost: boolean;
  /** This request follows a redirect to a host name other than the first one's. */
  otherHostName: boolean;
}

export function requestHead(target: Target, o: HeadOptions): RequestHead {
  const lines = [`${o.method} ${target.path} HTTP/1.1`];
  // a custom Host: replaces curl's, except after a redirect to another host name
  const customHost = hasCustomHeader(o.headers, "Host") && !o.otherHostName;
  if (!customHost) lines.push(`Host: ${target.hostHeader}`);
  if (target.userinfo !== null && !hasCustomHeader(o.headers, "Authorization") && !o.otherHost) {
    lines.push(`Authorization: Basic ${Buffer.from(target.userinfo.includes(":") ? target.userinfo : `${target.userinfo}:`).toString("base64")}`);
  }
  if (!hasCustomHeader(o.headers, "Accept")) lines.push("Accept: */*");
  for (const raw of o.headers) {
    const line = customHeaderLine(raw);
    if (line === null) continue;
    if (!customHost && startsWithCI(line, "Host:")) continue;
    // Curl_auth_allowed_to_host: credentials are not sent to another host after a redirect
    if (o.otherHost && (startsWithCI(line, "Authorization:") || startsWithCI(line, "Cookie:"))) continue;
    lines.push(line);
  }
  let expect100 = false;
  if (o.post) {
    if (!hasCustomHeader(o.headers, "Content-Length")) lines.push(`Content-Length: ${o.bodyLength}`);
    if (!hasCustomHeader(o.headers, "Content-Type")) lines.push("Content-Type: application/x-www-form-urlencoded");
    const expect = o.headers.find((l) => hasCustomHeader([l], "Expect"));
    if (expect !== undefined) {
      expect100 = /:\s*100-continue/i.test(expect);
    } else if (o.bodyLength > EXPECT_100_THRESHOLD) {
      lines.push("Expect: 100-continue");
      expect100 = true;
    }
  }
  return { bytes: Buffer.from(lines.join("\r\n") + "\r\n\r\n", "utf8"), expect100 };
}
