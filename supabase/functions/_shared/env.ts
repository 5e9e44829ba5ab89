// How functions read configuration: a getter instead of Deno.env directly, so handlers can be
// tested with an in-memory environment.

export type Env = (name: string) => string | undefined;

/** The platform environment (function secrets + SUPABASE_* values). */
export const denoEnv: Env = (name) => Deno.env.get(name);

/** An environment backed by a plain object (tests). */
export function envFrom(values: Record<string, string | undefined>): Env {
  return (name) => values[name];
}

/** A trimmed, non-empty value, or undefined. */
export function envValue(env: Env, name: string): string | undefined {
  const value = env(name)?.trim();
  return value ? value : undefined;
}
