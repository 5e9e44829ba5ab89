// The one list of fake providers. To add a real fake: write providers/<name>.ts
// exporting a ProviderModule (handler + fixture loader) and replace its
// notImplemented(...) entry here.

import type { ProviderModule, ProviderName } from "../types.ts";
import { googleOAuth } from "./google_oauth.ts";
import { instagramGraph } from "./instagram_graph.ts";
import { notImplemented } from "./not_implemented.ts";
import { resend } from "./resend.ts";
import { tiktok } from "./tiktok.ts";
import { twilio } from "./twilio.ts";
import { unipile } from "./unipile.ts";

// Typed as a full Record so the compiler flags a provider missing from the list.
export const PROVIDERS: Record<ProviderName, ProviderModule<unknown>> = {
  google_oauth: googleOAuth as ProviderModule<unknown>,
  instagram_graph: instagramGraph as ProviderModule<unknown>,
  tiktok: tiktok as ProviderModule<unknown>,
  twilio: twilio as ProviderModule<unknown>,
  resend: resend as ProviderModule<unknown>,
  unipile: unipile as ProviderModule<unknown>,
  stripe: notImplemented("stripe"),
};
