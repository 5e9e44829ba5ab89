/**
 * Function discovery and per-function configuration.
 *
 * A root is `{ functionsDir, configToml }`. Every `<functionsDir>/<name>/index.ts` whose folder
 * name does not start with `_` or `.` is a function (the Supabase CLI convention). Per-function
 * settings come from `[functions.<name>]` in the root's config.toml:
 *   verify_jwt  (default true)
 *   enabled     (default true; `false` → not served)
 *   entrypoint  (default `./functions/<name>/index.ts`, relative to the config.toml folder)
 *   import_map  (optional; a `deno.json(c)` is used as `--config`, anything else as `--import-map`)
 * Discovery happens per request (cheap stat calls; config.toml is re-parsed when its mtime
 * changes), so functions added while the server runs are picked up.
 */
import * as path from "node:path";
import { parseToml, type TomlTable } from "./toml.ts";

export interface FunctionsRoot {
  functionsDir: string;
  configToml: string;
}

export interface ResolvedFunction {
  name: string;
  root: FunctionsRoot;
  rootIndex: number;
  /** Absolute path of the entrypoint module. */
  entrypoint: string;
  /** Absolute folder of the function. */
  functionDir: string;
  verifyJwt: boolean;
  /** Absolute path passed as `--config` (undefined → no flag). */
  denoConfig?: string;
  /** Absolute path passed as `--import-map` (undefined → no flag). */
  importMap?: string;
  /** Absolute path of the root's `.env` (may not exist). */
  envFile: string;
}

/** Supabase function slugs: a letter first, then letters, digits, `_` and `-`. */
export const FUNCTION_NAME_RE = /^[A-Za-z][A-Za-z0-9_-]*$/;

export const FUNCTIONS_PREFIX = "/functions/v1/";

export type RouteMatch =
  | { kind: "health" }
  | { kind: "function"; name: string; /** path after `/functions/v1` (starts with `/<name>`) */ functionPath: string }
  | { kind: "not_found" };

export function matchRoute(pathname: string): RouteMatch {
  if (pathname === "/_internal/health") return { kind: "health" };
  if (!pathname.startsWith(FUNCTIONS_PREFIX)) return { kind: "not_found" };
  const rest = pathname.slice(FUNCTIONS_PREFIX.length - 1); // keeps the leading "/"
  const name = rest.slice(1).split("/")[0];
  if (!name) return { kind: "not_found" };
  return { kind: "function", name, functionPath: rest };
}

interface ConfigCacheEntry {
  mtimeMs: number | null;
  functions: Record<string, TomlTable>;
}

export class FunctionRouter {
  private readonly configCache = new Map<string, ConfigCacheEntry>();
  private readonly warned = new Set<string>();

  constructor(
    readonly roots: FunctionsRoot[],
    readonly projectRoot: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Reads a root's `[functions.*]` tables (cached by mtime). Throws on invalid TOML. */
  functionsConfig(root: FunctionsRoot): Record<string, TomlTable> {
    let mtimeMs: number | null = null;
    try {
      mtimeMs = Deno.statSync(root.configToml).mtime?.getTime() ?? 0;
    } catch {
      mtimeMs = null;
    }
    const cached = this.configCache.get(root.configToml);
    if (cached && cached.mtimeMs === mtimeMs) return cached.functions;
    let functions: Record<string, TomlTable> = {};
    if (mtimeMs !== null) {
      const doc = parseToml(Deno.readTextFileSync(root.configToml));
      const f = doc.functions;
      if (f && typeof f === "object" && !Array.isArray(f)) {
        functions = Object.fromEntries(
          Object.entries(f).filter(([, v]) => v && typeof v === "object" && !Array.isArray(v)),
        ) as Record<string, TomlTable>;
      }
    }
    this.configCache.set(root.configToml, { mtimeMs, functions });
    return functions;
  }

  /** Names of all functions across roots, first root wins (collisions are logged once). */
  listFunctions(): Record<string, ResolvedFunction> {
    const out: Record<string, ResolvedFunction> = {};
    this.roots.forEach((root, rootIndex) => {
      let entries: Deno.DirEntry[] = [];
      try {
        entries = [...Deno.readDirSync(root.functionsDir)];
      } catch {
        return;
      }
      for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (!e.isDirectory && !e.isSymlink) continue;
        if (!FUNCTION_NAME_RE.test(e.name)) continue;
        const fn = this.resolveInRoot(e.name, root, rootIndex);
        if (!fn) continue;
        if (out[e.name]) {
          this.warnOnce(
            `collision:${e.name}:${rootIndex}`,
            `warning: function "${e.name}" exists in ${out[e.name].root.functionsDir} and ${root.functionsDir}; serving the first`,
          );
          continue;
        }
        out[e.name] = fn;
      }
    });
    return out;
  }

  /** Finds the function to serve for `name`, or null (→ 404). */
  resolve(name: string): ResolvedFunction | null {
    if (!FUNCTION_NAME_RE.test(name)) return null;
    for (let i = 0; i < this.roots.length; i++) {
      const fn = this.resolveInRoot(name, this.roots[i], i);
      if (fn) {
        for (let j = i + 1; j < this.roots.length; j++) {
          if (this.resolveInRoot(name, this.roots[j], j)) {
            this.warnOnce(
              `collision:${name}:${j}`,
              `warning: function "${name}" exists in ${fn.root.functionsDir} and ${this.roots[j].functionsDir}; serving the first`,
            );
          }
        }
        return fn;
      }
    }
    return null;
  }

  private resolveInRoot(name: string, root: FunctionsRoot, rootIndex: number): ResolvedFunction | null {
    let cfg: TomlTable = {};
    try {
      cfg = this.functionsConfig(root)[name] ?? {};
    } catch (e) {
      this.warnOnce(
        `toml:${root.configToml}:${(e as Error).message}`,
        `warning: cannot parse ${root.configToml}: ${(e as Error).message}`,
      );
    }
    if (cfg.enabled === false) return null;
    const supabaseDir = path.dirname(root.configToml);
    const functionDir = path.join(root.functionsDir, name);
    const entrypoint = typeof cfg.entrypoint === "string"
      ? path.resolve(supabaseDir, cfg.entrypoint)
      : path.join(functionDir, "index.ts");
    if (!isFile(entrypoint)) return null;

    let denoConfig: string | undefined;
    let importMap: string | undefined;
    if (typeof cfg.import_map === "string" && cfg.import_map) {
      const p = path.resolve(supabaseDir, cfg.import_map);
      if (/^deno\.jsonc?$/.test(path.basename(p))) denoConfig = p;
      else importMap = p;
    }
    if (!denoConfig) {
      denoConfig = [path.join(functionDir, "deno.json"), path.join(functionDir, "deno.jsonc")].find(isFile) ??
        [path.join(this.projectRoot, "deno.json"), path.join(this.projectRoot, "deno.jsonc")].find(isFile);
    }
    return {
      name,
      root,
      rootIndex,
      entrypoint,
      functionDir,
      verifyJwt: cfg.verify_jwt !== false,
      denoConfig,
      importMap,
      envFile: path.join(root.functionsDir, ".env"),
    };
  }

  private warnOnce(key: string, line: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log(line);
  }
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}
