// Reads one HTTP/1.x response from the bytes of a connection, the way libcurl's HTTP/1 reader
// does: interim 1xx responses skipped, header names kept as the server sent them, folded lines
// unfolded, and the body framed by Transfer-Encoding: chunked, Content-Length or the end of the
// connection. Errors are the CURLcodes curl gives for the same input.
import type { CurlCode } from "./curl.ts";

export interface ResponseHead {
  status: number;
  /** [name, value] in the order received; names as sent, values trimmed like curl's headers API. */
  headers: [string, string][];
}

/** The first value of a header, matched case-insensitively (curl_easy_header index 0). */
export function headerValue(head: ResponseHead, name: string): string | null {
  const n = name.toLowerCase();
  for (const [k, v] of head.headers) if (k.toLowerCase() === n) return v;
  return null;
}

const MAX_HEADERS_BYTES = 300 * 1024; // curl's MAX_HTTP_RESP_HEADER_SIZE
const LF = 0x0a;
const decoder = new TextDecoder();

type Mode = "head" | "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers" | "close" | "done";

export class ResponseReader {
  /** The final (non-1xx) response head once it is complete. */
  head: ResponseHead | null = null;
  /** Statuses of the interim 1xx responses seen so far. */
  interim: number[] = [];
  readonly body: Uint8Array[] = [];
  error: { code: CurlCode; detail: string } | null = null;
  /** Bytes received so far; 0 at the end means "Server returned nothing". */
  received = 0;

  private pending: Uint8Array = new Uint8Array(0);
  private mode: Mode = "head";
  private lines: string[] = [];
  private headBytes = 0;
  private remaining = 0;

  get done(): boolean {
    return this.mode === "done" || this.error !== null;
  }

  feed(chunk: Uint8Array): void {
    if (this.done) return;
    this.received += chunk.length;
    if (this.mode === "close") {
      this.body.push(chunk);
      return;
    }
    this.pending = this.pending.length ? concat(this.pending, chunk) : chunk;
    this.run();
  }

  /** The connection was closed by the server. */
  end(): void {
    if (this.done) return;
    if (this.received === 0) return this.fail("GOT_NOTHING", "Empty reply from server");
    switch (this.mode) {
      case "close":
        this.mode = "done";
        return;
      case "head":
        // complete header lines but no blank line: curl ends the headers at the close
        if (this.lines.length > 0 && this.head === null && this.parseHead(true)) this.mode = "done";
        else if (!this.error) this.fail("GOT_NOTHING", "Empty reply from server");
        return;
      default:
        return this.fail("PARTIAL_FILE", "transfer closed with outstanding read data remaining");
    }
  }

  private fail(code: CurlCode, detail: string): void {
    this.error = { code, detail };
  }

  private takeLine(): string | null {
    const lf = this.pending.indexOf(LF);
    if (lf < 0) return null;
    let end = lf;
    if (end > 0 && this.pending[end - 1] === 0x0d) end--;
    const bytes = this.pending.subarray(0, end);
    this.pending = this.pending.subarray(lf + 1);
    if (this.mode === "head") {
      this.headBytes += lf + 1;
      if (bytes.includes(0)) {
        this.fail("WEIRD_SERVER_REPLY", "Nul byte in header");
        return null;
      }
    }
    return decoder.decode(bytes);
  }

  private run(): void {
    while (!this.done) {
      switch (this.mode) {
        case "head": {
          if (this.lines.length === 0 && this.head === null && !looksLikeHttp(this.pending)) {
            return this.fail("UNSUPPORTED_PROTOCOL", "Received HTTP/0.9 when not allowed");
          }
          const line = this.takeLine();
          if (line === null) {
            if (!this.error && this.headBytes + this.pending.length > MAX_HEADERS_BYTES) {
              this.fail("RECV_ERROR", "Too large response headers");
            }
            return;
          }
          if (line !== "") {
            this.lines.push(line);
            continue;
          }
          if (!this.parseHead(false)) return;
          continue;
        }
        case "length": {
          if (this.pending.length === 0) return;
          const take = Math.min(this.remaining, this.pending.length);
          this.body.push(this.pending.subarray(0, take));
          this.pending = this.pending.subarray(take);
          this.remaining -= take;
          if (this.remaining === 0) this.mode = "done";
          continue;
        }
        case "chunk-size": {
          const line = this.takeLine();
          if (line === null) return;
          const m = /^([0-9a-fA-F]{1,16})[ \t]*(;.*)?$/.exec(line);
          if (!m) return this.fail("RECV_ERROR", "Illegal or missing hexadecimal sequence in chunked-encoding");
          this.remaining = Number.parseInt(m[1], 16);
          this.mode = this.remaining === 0 ? "trailers" : "chunk-data";
          continue;
        }
        case "chunk-data": {
          if (this.pending.length === 0) return;
          const take = Math.min(this.remaining, this.pending.length);
          this.body.push(this.pending.subarray(0, take));
          this.pending = this.pending.subarray(take);
          this.remaining -= take;
          if (this.remaining === 0) this.mode = "chunk-end";
          continue;
        }
        case "chunk-end": {
          const line = this.takeLine();
          if (line === null) return;
          if (line !== "") return this.fail("RECV_ERROR", "Malformed encoding found in chunked-encoding");
          this.mode = "chunk-size";
          continue;
        }
        case "trailers": {
          const line = this.takeLine();
          if (line === null) return;
          if (line === "") this.mode = "done";
          continue;
        }
        case "close":
          if (this.pending.length) this.body.push(this.pending);
          this.pending = new Uint8Array(0);
          return;
        case "done":
          return;
      }
    }
  }

  /** Parses the collected head; false when it failed (error set). */
  private parseHead(atEof: boolean): boolean {
    const [statusLine, ...rest] = this.lines;
    this.lines = [];
    const m = /^[ \t]*HTTP\/(\d)(?:\.(\d))?[ \t](\d{3})(?:[ \t\r\n\v\f].*)?$/.exec(statusLine);
    if (!m) {
      this.fail(statusLine.trimStart().startsWith("HTTP/1") ? "UNSUPPORTED_PROTOCOL" : "WEIRD_SERVER_REPLY",
        `Invalid status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
      return false;
    }
    if (m[1] !== "1" || (m[2] !== "0" && m[2] !== "1")) {
      this.fail("UNSUPPORTED_PROTOCOL", "Unsupported HTTP version in response");
      return false;
    }
    const status = Number(m[3]);
    const headers: [string, string][] = [];
    for (const line of rest) {
      if ((line[0] === " " || line[0] === "\t") && headers.length > 0) {
        const last = headers[headers.length - 1];
        last[1] = `${last[1]} ${line.trim()}`.trim();
        continue;
      }
      const colon = line.indexOf(":");
      if (colon < 0) {
        this.fail("WEIRD_SERVER_REPLY", "Header without colon");
        return false;
      }
      headers.push([line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+/, "").replace(/[ \t\r\n\v\f]+$/, "")]);
    }
    if (status >= 100 && status < 200 && !atEof) {
      this.interim.push(status); // 1xx: not the response; read the next head
      this.headBytes = 0;
      return true;
    }
    const head = { status, headers };
    this.head = head;
    if (atEof || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      this.mode = "done";
      return true;
    }
    const te = headerValue(head, "transfer-encoding");
    if (te !== null && /(^|,)\s*chunked\s*$/i.test(te)) {
      this.mode = "chunk-size";
      return true;
    }
    const cl = headerValue(head, "content-length");
    if (cl !== null) {
      if (!/^\d{1,15}$/.test(cl)) {
        this.fail("WEIRD_SERVER_REPLY", `Invalid Content-Length: value ${JSON.stringify(cl)}`);
        return false;
      }
      this.remaining = Number(cl);
      this.mode = this.remaining === 0 ? "done" : "length";
      return true;
    }
    this.mode = "close";
    return true;
  }
}

/** curl's checkhttpprefix on what has arrived so far: could this still be "HTTP/…"? */
function looksLikeHttp(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09)) i++;
  const prefix = "HTTP/";
  for (let j = 0; j < prefix.length && i + j < bytes.length; j++) {
    if (String.fromCharCode(bytes[i + j]).toUpperCase() !== prefix[j]) return false;
  }
  return true;
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
