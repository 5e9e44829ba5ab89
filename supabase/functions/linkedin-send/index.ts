// Entry point only: the platform's dependencies + Deno.serve. The logic is in handler.ts.
import { platformDeps } from "../_shared/platform_deps.ts";
import { createHandler } from "./handler.ts";

Deno.serve(createHandler(platformDeps()));
