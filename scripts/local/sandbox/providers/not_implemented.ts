// Placeholder for providers whose fake is not written yet: it still listens on
// its own origin (so stack.json and clients can be wired today) and answers
// every request with a JSON 501 that the request log records like any other.

import { jsonResponse } from "../http.ts";
import type { ProviderModule, ProviderName } from "../types.ts";

export function notImplemented(name: ProviderName): ProviderModule<Record<string, never>> {
  return {
    name,
    loadState: () => ({}),
    handle: (req) =>
      jsonResponse(501, {
        error: "not_implemented",
        provider: name,
        message: `The ${name} sandbox does not implement ${req.method} ${req.path} yet.`,
      }),
    faultBody: (status) => ({ error: "sandbox_fault", provider: name, status }),
    snapshot: () => ({}),
  };
}
