// Child processes of the stack: spawned with their output split into lines, prefixed for the
// console and appended to a per-process log file, and waited on for a "<name> ready {json}" line.
import { appendFile } from "node:fs/promises";
import { join } from "./paths.ts";

export interface ChildSpec {
  name: string;
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** The stdout line prefix that means "ready"; the JSON after it is returned by ready. */
  readyPrefix?: string;
}

export interface Child {
  name: string;
  pid: number;
  process: Deno.ChildProcess;
  /** Resolves with the parsed JSON of the ready line; rejects if the process exits first. */
  ready: Promise<unknown>;
  status: Promise<Deno.CommandStatus>;
  /** Last lines of output, for error messages. */
  tail(): string;
}

export type LineSink = (name: string, line: string) => void;

async function pump(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered) onLine(buffered);
}

export function spawnChild(spec: ChildSpec, logDir: string, sink: LineSink): Child {
  const [cmd, ...args] = spec.argv;
  const process = new Deno.Command(cmd, {
    args,
    env: spec.env,
    cwd: spec.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logFile = join(logDir, `${spec.name}.log`);
  const recent: string[] = [];
  let resolveReady: (v: unknown) => void = () => {};
  let rejectReady: (e: Error) => void = () => {};
  const ready = new Promise<unknown>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  if (!spec.readyPrefix) resolveReady(null);
  // Log writes are chained so lines land in order without blocking the pumps.
  let logChain = Promise.resolve();
  const onLine = (line: string) => {
    recent.push(line);
    if (recent.length > 40) recent.shift();
    logChain = logChain.then(() => appendFile(logFile, line + "\n")).catch(() => {});
    if (spec.readyPrefix && line.startsWith(spec.readyPrefix)) {
      try {
        resolveReady(JSON.parse(line.slice(spec.readyPrefix.length).trim() || "null"));
      } catch (e) {
        rejectReady(new Error(`${spec.name}: unreadable ready line: ${line} (${e})`));
      }
    }
    sink(spec.name, line);
  };
  const pumps = Promise.all([pump(process.stdout, onLine), pump(process.stderr, onLine)]);
  const status = process.status.then(async (s) => {
    await pumps.catch(() => {});
    await logChain;
    rejectReady(new Error(`${spec.name} exited (code ${s.code}${s.signal ? `, signal ${s.signal}` : ""}) before it was ready:\n${recent.join("\n")}`));
    return s;
  });
  ready.catch(() => {}); // observed by the caller; avoid unhandled rejection noise
  return { name: spec.name, pid: process.pid, process, ready, status, tail: () => recent.join("\n") };
}

/** SIGTERM, then SIGKILL after graceMs if the process has not exited. */
export async function stopChild(child: Child, signal: Deno.Signal = "SIGTERM", graceMs = 10_000): Promise<void> {
  try {
    child.process.kill(signal);
  } catch {
    return; // already gone
  }
  const timer = setTimeout(() => {
    try {
      child.process.kill("SIGKILL");
    } catch { /* gone */ }
  }, graceMs);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** The command line of a live process, or null if it is gone (Linux /proc; zombies count as gone). */
export function processCmdline(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (/^\d+ \(.*\) Z /.test(stat)) return null;
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
  } catch {
    return null;
  }
}
