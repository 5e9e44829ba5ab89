// Path helpers from node:path / node:url, because deno std is not reachable from this machine.
export { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export function fromFileUrl(url: URL): string {
  return fileURLToPath(url);
}
