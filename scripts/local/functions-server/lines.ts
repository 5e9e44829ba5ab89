// Line splitting for child process output (worker stdout/stderr).

// deno-lint-ignore no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Colour codes make log files unreadable; Deno children emit them even when piped. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, "");
}

/** Calls onLine for every line of the stream (the last one even without a newline). */
export async function forEachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
      }
    }
    buf += decoder.decode();
    if (buf) onLine(buf);
  } catch {
    /* stream errored (process killed) */
  }
}
