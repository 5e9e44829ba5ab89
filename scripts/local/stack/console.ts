// Console output of a foreground stack: one colour-coded prefix per process, so interleaved
// logs stay readable. Colours only on a TTY.
const COLORS: Record<string, number> = {
  stack: 36, postgres: 34, "net-worker": 35, functions: 32, sandbox: 33,
};

export function consoleSink(): (name: string, line: string) => void {
  const tty = Deno.stdout.isTerminal();
  const width = Math.max(...Object.keys(COLORS).map((k) => k.length));
  return (name, line) => {
    const label = name.padEnd(width);
    const prefix = tty ? `\x1b[${COLORS[name] ?? 37}m${label}\x1b[0m │` : `${label} │`;
    console.log(`${prefix} ${line}`);
  };
}
