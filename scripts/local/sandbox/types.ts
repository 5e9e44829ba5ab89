// Shared types of the provider sandbox. Kept dependency-free so every provider
// module, the control API and the server can import them without cycles.

/** Every third-party API the stack talks to. Order = order of the registry. */
export const PROVIDER_NAMES = [
  "google_oauth",
  "instagram_graph",
  "tiktok",
  "twilio",
  "resend",
  "unipile",
  "stripe",
] as const;

export type ProviderName = (typeof PROVIDER_NAMES)[number];

export function isProviderName(value: unknown): value is ProviderName {
  return typeof value === "string" &&
    (PROVIDER_NAMES as readonly string[]).includes(value);
}

/** Parsed request body: JSON value, form fields, multipart fields, raw text, or null (no body). */
export type ParsedBody =
  | null
  | string
  | Record<string, unknown>
  | unknown[]
  | number
  | boolean;

/**
 * A provider request, read once by the server (the body can only be consumed
 * once and both the handler and the request log need it).
 */
export interface SandboxRequest {
  method: string; // upper-case
  path: string; // URL pathname, no query
  url: URL;
  query: URLSearchParams;
  headers: Headers;
  /** Media type without parameters, lower-case ("" if none). */
  contentType: string;
  /** Parsed body (see ParsedBody). */
  body: ParsedBody;
  /** Raw body text ("" if none); handy for signature checks in later providers. */
  rawText: string;
}

/** What loadState may use besides its fixture section. */
export interface LoadContext {
  /**
   * The functions URL of the stack (…/functions/v1, sandbox flag --functions-url), for fixture
   * webhooks that point at a function; null when the sandbox was started without it.
   */
  functionsUrl: string | null;
}

/** What a seed hook (POST /__state/<provider>) may use besides the state. */
export interface SeedContext {
  /** Aborts when the sandbox closes; timers a seed starts (e.g. webhooks it fires) end on it. */
  signal: AbortSignal;
}

/** What a provider handler may use besides the request. */
export interface ProviderContext<S> {
  state: S;
  /** Public origin of this provider's listener, e.g. http://127.0.0.1:54331. */
  origin: string;
  /**
   * Aborts when the sandbox closes. Anything a handler starts that outlives its request
   * (a deliberately hung response, webhooks fired later) must end on it, or close() waits.
   */
  signal: AbortSignal;
}

/**
 * One fake provider. Adding a provider = one file exporting one of these,
 * registered in providers/registry.ts.
 */
export interface ProviderModule<S = unknown> {
  name: ProviderName;
  /**
   * Builds fresh in-memory state from this provider's section of the fixture
   * file (undefined when the section is absent). Throw on invalid fixtures. The sandbox always
   * passes ctx; tests that build a state by hand may leave it out.
   */
  loadState(fixture: unknown, ctx?: LoadContext): S;
  /** Answers one request. Must not do file I/O (hot path). */
  handle(req: SandboxRequest, ctx: ProviderContext<S>): Response | Promise<Response>;
  /** Default body of an injected fault with this status, in the provider's error envelope. */
  faultBody(status: number): unknown;
  /** JSON-able view of the state for GET /__state/<provider>. */
  snapshot(state: S): unknown;
  /**
   * Adds records to the live state (POST /__state/<provider>), e.g. thousands of refresh tokens
   * for a load test. Throws with a message naming the bad field on invalid input.
   */
  seed?(state: S, input: unknown, ctx: SeedContext): unknown;
  /**
   * Called with the old state when POST /__reset replaces it: stops what it still has running
   * (e.g. pending webhooks), so nothing from before the reset reaches a test afterwards.
   */
  dispose?(state: S): void;
}

/** One entry of the request log (GET /__requests). */
export interface RecordedRequest {
  id: string;
  provider: ProviderName;
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  body: ParsedBody;
  /** What the client got; 0 when a `reset` fault cut the connection. */
  status: number;
  /** Set when an injected fault produced the answer. */
  fault_id?: string;
  /** Set when the fault struck after the fake handled the request (its effect stands). */
  fault_after?: boolean;
  time: string;
  duration_ms: number;
}
