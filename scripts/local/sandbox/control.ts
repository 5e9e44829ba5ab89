// The control API (its own origin): inspect the request log, inject faults,
// reset provider state and read it. Used by tests and the local stack only.

import { type FaultStore, parseFaultInput } from "./faults.ts";
import { jsonResponse } from "./http.ts";
import type { RequestFilter, RequestLog } from "./request_log.ts";
import { isProviderName, type ProviderName } from "./types.ts";

export interface ControlDeps {
  log: RequestLog;
  faults: FaultStore;
  snapshot(provider: ProviderName): unknown;
  /** Adds records to a provider's state (POST /__state/<provider>); throws on invalid input. */
  seed(provider: ProviderName, input: unknown): unknown;
  /** Reloads the fixture file, clears log and faults. */
  reset(): Promise<void>;
}

function methodNotAllowed(allow: string): Response {
  return jsonResponse(405, { error: "method_not_allowed", message: `Use ${allow}.` }, { allow });
}

export async function handleControl(req: Request, deps: ControlDeps): Promise<Response> {
  const url = new URL(req.url);
  const path = url.pathname;
  const method = req.method.toUpperCase();

  switch (path) {
    case "/__health":
      return jsonResponse(200, { ok: true });

    case "/__requests": {
      if (method === "GET") {
        const q = url.searchParams;
        const filter: RequestFilter = {};
        for (const key of ["provider", "path", "method"] as const) {
          const v = q.get(key);
          if (v !== null) filter[key] = v;
        }
        const limit = q.get("limit");
        if (limit !== null) {
          const n = Number(limit);
          if (!Number.isInteger(n) || n < 0) {
            return jsonResponse(400, {
              error: "invalid_request",
              field: "limit",
              message: "limit must be a non-negative integer",
            });
          }
          filter.limit = n;
        }
        return jsonResponse(200, { requests: deps.log.list(filter) });
      }
      if (method === "DELETE") return jsonResponse(200, { cleared: deps.log.clear() });
      return methodNotAllowed("GET, DELETE");
    }

    case "/__faults": {
      if (method === "GET") return jsonResponse(200, { faults: deps.faults.list() });
      if (method === "DELETE") return jsonResponse(200, { cleared: deps.faults.clear() });
      if (method === "POST") {
        let input: unknown;
        try {
          input = JSON.parse(await req.text());
        } catch {
          return jsonResponse(400, {
            error: "invalid_request",
            field: null,
            message: "body must be valid JSON",
          });
        }
        const parsed = parseFaultInput(input);
        if (!parsed.ok) return jsonResponse(400, parsed.error);
        return jsonResponse(201, { fault: deps.faults.add(parsed.value) });
      }
      return methodNotAllowed("GET, POST, DELETE");
    }

    case "/__reset": {
      if (method !== "POST") return methodNotAllowed("POST");
      try {
        await deps.reset();
      } catch (e) {
        return jsonResponse(500, { error: "fixture_error", message: (e as Error).message });
      }
      return jsonResponse(200, { reset: true });
    }
  }

  if (path.startsWith("/__state/")) {
    const name = path.slice("/__state/".length);
    if (!isProviderName(name)) {
      return jsonResponse(404, { error: "not_found", message: `Unknown provider ${name}.` });
    }
    if (method === "GET") return jsonResponse(200, { provider: name, state: deps.snapshot(name) });
    if (method !== "POST") return methodNotAllowed("GET, POST");
    let input: unknown;
    try {
      input = JSON.parse(await req.text());
    } catch {
      return jsonResponse(400, { error: "invalid_request", field: null, message: "body must be valid JSON" });
    }
    try {
      return jsonResponse(200, { provider: name, seeded: deps.seed(name, input) });
    } catch (e) {
      return jsonResponse(400, { error: "invalid_request", message: (e as Error).message });
    }
  }

  return jsonResponse(404, { error: "not_found", message: `Unknown control path ${path}.` });
}
