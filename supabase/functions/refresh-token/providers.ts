// Token refresh client per social_accounts.platform. A platform not listed fails permanently
// ("unsupported platform"). The credential each client receives comes from SQL
// (social.refresh_credential): the refresh token, or for Instagram the long-lived access token.

import { googleOAuthProvider } from "../_shared/providers/google_oauth.ts";
import { instagramProvider } from "../_shared/providers/instagram.ts";
import { tiktokProvider } from "../_shared/providers/tiktok.ts";
import type { ProviderFactory } from "../_shared/providers/token_refresh.ts";

export const REFRESH_PROVIDERS: Readonly<Record<string, ProviderFactory>> = {
  youtube: googleOAuthProvider,
  instagram: instagramProvider,
  tiktok: tiktokProvider,
};
