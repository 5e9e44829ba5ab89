// Error text that is stored (jobs.task.last_error) or returned must never carry credentials.
// Providers do not echo tokens in their errors, but a database or network message might.

const MAX_ERROR_LENGTH = 500;

/** Replaces every occurrence of each secret with [redacted] and caps the length. */
export function redact(text: string, secrets: ReadonlyArray<string | null | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    // Very short values would mangle ordinary words; real tokens and secrets are long.
    if (secret && secret.length >= 4) out = out.split(secret).join("[redacted]");
  }
  return out.length > MAX_ERROR_LENGTH ? `${out.slice(0, MAX_ERROR_LENGTH - 1)}…` : out;
}
