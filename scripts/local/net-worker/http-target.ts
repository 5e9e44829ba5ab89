// Splits a URL the way libcurl reads CURLOPT_URL for an HTTP transfer: a missing scheme is
// guessed from the host name, only http and https may be used (CURLOPT_PROTOCOLS_STR
// "http,https"), and the host, path and query are kept as written (no re-encoding).
import { isIP } from "node:net";
import type { CurlCode } from "./curl.ts";

export interface Target {
  scheme: "http" | "https";
  /** Host name as written in the URL, without the brackets of an IPv6 literal. */
  host: string;
  port: number;
  /** The Host header value: host, with [brackets] for IPv6 and ":port" unless the default. */
  hostHeader: string;
  /** The request target: path (at least "/") and query, no fragment. */
  path: string;
  /** Percent-decoded "user:password" from the URL, if any (sent as Basic auth). */
  userinfo: string | null;
  /** scheme://hostHeader + path, used to resolve redirects. */
  href: string;
}

/** libcurl's scheme guess for a URL without "scheme://" (host name prefix). */
function guessScheme(rest: string): string {
  const host = rest.toLowerCase();
  for (const p of ["ftp", "dict", "ldap", "imap", "smtp", "pop3"]) if (host.startsWith(`${p}.`)) return p;
  return "http";
}

export function parseTarget(url: string): Target | { error: CurlCode; detail: string } {
  const bad = (error: CurlCode, detail: string) => ({ error, detail });
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f]/.test(url)) return bad("URL_MALFORMAT", "URL contains spaces or control characters");
  const m = /^([A-Za-z][A-Za-z0-9+.-]{0,39}):(\/+)(.*)$/s.exec(url);
  if (m && m[2].length > 3) return bad("URL_MALFORMAT", "Unsupported number of slashes following scheme");
  const scheme = m ? m[1].toLowerCase() : guessScheme(url);
  const rest = m ? m[3] : url;
  if (scheme !== "http" && scheme !== "https") return bad("UNSUPPORTED_PROTOCOL", `Protocol "${scheme}" not supported`);
  const parts = /^([^/?#]*)([^#]*)/s.exec(rest)!;
  let authority = parts[1];
  let path = parts[2];
  if (path === "" || path.startsWith("?")) path = "/" + path;
  let userinfo: string | null = null;
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    try {
      userinfo = decodeURIComponent(authority.slice(0, at));
    } catch {
      return bad("URL_MALFORMAT", "Bad userinfo");
    }
    authority = authority.slice(at + 1);
  }
  let host: string;
  let portText = "";
  let ipv6 = false;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return bad("URL_MALFORMAT", "Bad IPv6 address");
    host = authority.slice(1, close).replace(/%25/, "%");
    ipv6 = true;
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return bad("URL_MALFORMAT", "Bad IPv6 address");
    portText = after.slice(1);
    if (isIP(host.split("%")[0]) !== 6) return bad("URL_MALFORMAT", "Bad IPv6 address");
  } else {
    const colon = authority.lastIndexOf(":");
    host = colon >= 0 ? authority.slice(0, colon) : authority;
    portText = colon >= 0 ? authority.slice(colon + 1) : "";
  }
  if (host === "") return bad("URL_MALFORMAT", "No host part in the URL");
  const defaultPort = scheme === "https" ? 443 : 80;
  let port = defaultPort;
  if (portText !== "") {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return bad("URL_MALFORMAT", "Port number was not a decimal number between 0 and 65535");
    port = Number(portText);
  }
  const bracketed = ipv6 ? `[${host}]` : host;
  const hostHeader = port === defaultPort ? bracketed : `${bracketed}:${port}`;
  return { scheme, host, port, hostHeader, path, userinfo, href: `${scheme}://${hostHeader}${path}` };
}

/** Resolves a Location header against the URL it came from (RFC 3986, like curl's URL API). */
export function resolveLocation(location: string, base: Target): string | null {
  try {
    return new URL(location.trim(), base.href).href;
  } catch {
    return null;
  }
}
