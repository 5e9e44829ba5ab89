// Every HTTP exchange of the suite goes through `send`, which keeps each response's status,
// headers and body, so the suite can assert at the end that none of them carries a secret.
export interface Exchange {
  what: string;
  status: number;
  headers: string;
  text: string;
  json: any;
}

export const received: Exchange[] = [];

export async function send(what: string, url: string, init: RequestInit & { duplex?: "half" } = {}): Promise<Exchange> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    // A server that answers before reading a large body may close the socket under the sender.
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
    throw new Error(`${what}: ${cause}`);
  }
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n");
  const ex = { what, status: res.status, headers, text, json };
  received.push(ex);
  return ex;
}
