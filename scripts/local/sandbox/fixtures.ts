// Loads the fixture file (seed state of every provider). Only called at start
// and on POST /__reset, never on the request path.

import { PROVIDERS } from "./providers/registry.ts";
import { type LoadContext, PROVIDER_NAMES, type ProviderName } from "./types.ts";

/**
 * scripts/local/sandbox/fixtures.json, next to this file. (No node:url here so
 * that server.ts can be type-checked/imported without @types/node.)
 */
export const DEFAULT_FIXTURES_PATH = decodeURIComponent(
  new URL("./fixtures.json", import.meta.url).pathname,
);

export type ProviderStates = Record<ProviderName, unknown>;

/**
 * Reads and validates the fixture file: a JSON object with one optional
 * section per provider name (other top-level keys such as "_comment" are
 * ignored). Throws with the provider name on invalid sections, so a bad file
 * never half-replaces the running state.
 */
export async function loadFixtures(
  path: string,
  ctx: LoadContext = { functionsUrl: null },
): Promise<ProviderStates> {
  const text = await Deno.readTextFile(path);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`fixture file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(`fixture file ${path} must contain a JSON object`);
  }
  const sections = doc as Record<string, unknown>;
  const states = {} as ProviderStates;
  for (const name of PROVIDER_NAMES) {
    try {
      states[name] = PROVIDERS[name].loadState(sections[name], ctx);
    } catch (e) {
      throw new Error(`fixture file ${path}, section ${name}: ${(e as Error).message}`);
    }
  }
  return states;
}
