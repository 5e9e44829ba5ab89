// Token refresh client per social_accounts.platform. Instagram and TikTok get their own client
// file under _shared/providers/ and one line here; a platform not listed fails permanently
// ("unsupported platform").

import { googleOAuthProvider } from "../_shared/providers/google_oauth.ts";
import type { ProviderFactory } from "../_shared/providers/token_refresh.ts";

export const REFRESH_PROVIDERS: Readonly<Record<string, ProviderFactory>> = {
  youtube: googleOAuthProvider,
};
