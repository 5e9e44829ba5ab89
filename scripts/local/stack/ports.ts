// Fails early, with the port and the variable that moves it, when something else listens.
import { type PORT_ENV, portEnvName, PROVIDERS, type StackConfig } from "./config.ts";

export class PortInUseError extends Error {}

function free(port: number): boolean {
  try {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    l.close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) return false;
    throw e;
  }
}

export function assertPortsFree(cfg: StackConfig): void {
  const checks: [number, string, keyof typeof PORT_ENV][] = [
    [cfg.dbPort, "Postgres", "db"],
    [cfg.apiPort, "the functions server", "api"],
    [cfg.sandboxPort, "the provider sandbox control API", "sandbox"],
    ...PROVIDERS.map((p): [number, string, keyof typeof PORT_ENV] => [cfg.providerPorts[p], `the ${p} sandbox fake`, "sandbox"]),
  ];
  for (const [port, what, key] of checks) {
    if (!free(port)) {
      const env = portEnvName(cfg.profile, key);
      throw new PortInUseError(
        `Port ${port} (for ${what}) is already in use on 127.0.0.1.\n` +
          `Stop whatever is listening there (e.g. \`ss -ltnp 'sport = :${port}'\`), or choose another port: ` +
          `${env}=<port> npm ${cfg.profile === "test" ? "test" : "start"}` +
          (key === "sandbox" ? ` (the sandbox fakes use the ${PROVIDERS.length} ports after it)` : ""),
      );
    }
  }
}
