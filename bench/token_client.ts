// Client for the sandbox's fake Google token endpoint, used by the peer contenders and the HTTP
// ceiling (Duework's own function has its own client): node:http with a keep-alive agent capped at
// the run's concurrency, form-encoded refresh grant with the sandbox's OAuth client.
// Runs under Node (tsx) and Deno alike: node: modules only.
import http from "node:http";
import { Buffer } from "node:buffer";

export const CLIENT_ID = "duework-local-client.apps.googleusercontent.com";
export const CLIENT_SECRET = "duework-local-secret";

export interface TokenAnswer {
  access_token: string;
  expires_in: number;
}

export interface TokenClient {
  refresh(refreshToken: string): Promise<TokenAnswer>;
  readonly calls: number;
  close(): void;
}

export function createTokenClient(tokenUrl: string, opts: { maxSockets: number; timeoutMs?: number }): TokenClient {
  const url = new URL(tokenUrl);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets });
  let calls = 0;

  function refresh(refreshToken: string): Promise<TokenAnswer> {
    calls += 1;
    const body = new URLSearchParams({
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_type: "refresh_token",
      refresh_token: refreshToken,
    }).toString();
    return new Promise((resolve, reject) => {
      const req = http.request(url, {
        method: "POST",
        agent,
        timeout: timeoutMs,
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          "content-length": Buffer.byteLength(body),
          accept: "application/json",
        },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) return reject(new Error(`token endpoint answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
          let json: TokenAnswer;
          try {
            json = JSON.parse(text);
          } catch {
            return reject(new Error("token endpoint answered invalid JSON"));
          }
          if (typeof json.access_token !== "string" || !Number.isFinite(json.expires_in)) {
            return reject(new Error("token response lacks access_token or expires_in"));
          }
          resolve(json);
        });
      });
      req.on("timeout", () => req.destroy(new Error(`token endpoint timed out after ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  return {
    refresh,
    get calls() {
      return calls;
    },
    close() {
      agent.destroy();
    },
  };
}
