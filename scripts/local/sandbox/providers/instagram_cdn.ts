// Signed "CDN" URLs for the fake Instagram media: `oe` is the expiry as hex unix seconds (as on
// scontent-*.cdninstagram.com, contract §2b) and `oh` a signature over path + oe, so a client
// that edits oe gets a 403 like the real CDN. By default the fake serves the URLs itself under
// /cdn/, answering 403 "URL signature expired" once oe has passed.

import type { IgMedia, InstagramGraphState } from "./instagram_graph_state.ts";

export const CDN_PATH_PREFIX = "/cdn/";

/** FNV-1a, twice with different offsets: a stable 64-bit hex tag without async WebCrypto. */
function sign(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193 + 2) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

function signature(state: InstagramGraphState, path: string, oe: string): string {
  return "00_" + sign(`${path}|${oe}|${state.cdnSecret}`);
}

/** A signed URL for one rendition of `media` ("media" = the file itself, "thumb" = cover image). */
export function mediaUrl(
  state: InstagramGraphState,
  origin: string,
  media: IgMedia,
  rendition: "media" | "thumb",
  nowMs: number,
): string {
  const ext = rendition === "media" && media.media_type === "VIDEO" ? "mp4" : "jpg";
  const path = `${CDN_PATH_PREFIX}v/t51.2885-15/${media.id}_${rendition === "media" ? "n" : "thumb"}.${ext}`;
  const oe = (Math.floor(nowMs / 1000) + state.mediaUrlTtlSeconds).toString(16).toUpperCase();
  const base = state.cdnBaseUrl ?? origin;
  const query = new URLSearchParams({
    _nc_cat: "1",
    _nc_sid: "18de74",
    _nc_ht: "scontent.cdninstagram.com",
    oh: signature(state, path, oe),
    oe,
  });
  return `${base}${path}?${query}`;
}

/** GET /cdn/…: 200 with a few bytes while the signature holds, 403 like the real CDN otherwise. */
export function serveCdn(state: InstagramGraphState, path: string, query: URLSearchParams, nowMs: number): Response {
  const oe = query.get("oe") ?? "";
  const oh = query.get("oh") ?? "";
  const text = (status: number, body: string) =>
    new Response(body, { status, headers: { "content-type": "text/plain" } });
  if (!/^[0-9A-Fa-f]{1,12}$/.test(oe) || oh !== signature(state, path, oe.toUpperCase())) {
    return text(403, "URL signature mismatch");
  }
  if (parseInt(oe, 16) * 1000 <= nowMs) return text(403, "URL signature expired");
  const isVideo = path.endsWith(".mp4");
  return new Response(new Uint8Array([0, 0, 0, 0x18]), {
    status: 200,
    headers: { "content-type": isVideo ? "video/mp4" : "image/jpeg" },
  });
}
