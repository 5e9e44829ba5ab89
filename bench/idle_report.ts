// The "Idle cost of the scheduler" section of bench/RESULTS.md and the console table, from the
// idle measurements (bench/idle.ts): one column per label (before, after, …), then each
// measurement's details.
import type { IdleMeasurement, IdleResults, WindowStats } from "./idle.ts";
import type { StatementTime } from "./idle_stats.ts";
import type { Dist } from "./stats.ts";

export const IDLE_HEADING = "## Idle cost of the scheduler";
/** The issue's goal: the scheduler's DB time per minute with 30 idle jobs. */
export const IDLE_GOAL_MS_PER_MIN = 5;
export const IDLE_COMMAND = "npm run bench -- --workloads idle --idle-label before";

const perMin = (v: number, w: WindowStats) => v / w.minutes;
const f2 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(2));
const f3 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(3));

/** Statements whose time is mostly pg_sleep (the pg_cron 1.4 minute heartbeat), not work. */
export function sleeps(s: StatementTime): boolean {
  return /heartbeat_minute|pg_sleep/.test(s.query) || s.ms / s.calls > 1000;
}

/** ms/min of the functions named `name` (schema.function), total and self. */
function fn(w: WindowStats, name: string): { total: number; self: number; calls: number } | null {
  const f = w.functions.find((x) => x.name === name);
  return f ? { total: perMin(f.totalMs, w), self: perMin(f.selfMs, w), calls: perMin(f.calls, w) } : null;
}

export interface IdleSummary {
  cpuPerMin: number;
  comeAndGoPerMin: number;
  baselinePerMin: number | null;
  schedulerCpuPerMin: number | null;
  statementsPerMin: number | null;
  heartbeat: { total: number; self: number; calls: number } | null;
  tick: { total: number; self: number; calls: number } | null;
  heartbeatMinute: { total: number; self: number; calls: number } | null;
  cronRunsPerMin: number;
  sessionsPerMin: number;
}

export function idleSummary(m: IdleMeasurement): IdleSummary {
  const w = m.window;
  const cpuPerMin = perMin(w.cpu.totalMs, w);
  const baselinePerMin = m.baseline ? perMin(m.baseline.cpu.totalMs, m.baseline) : null;
  return {
    cpuPerMin,
    comeAndGoPerMin: perMin(w.cpu.comeAndGoMs, w),
    baselinePerMin,
    schedulerCpuPerMin: baselinePerMin === null ? null : cpuPerMin - baselinePerMin,
    statementsPerMin: w.statements === null ? null : perMin(w.statements.filter((s) => !sleeps(s)).reduce((a, s) => a + s.ms, 0), w),
    heartbeat: fn(w, "jobs.heartbeat"),
    tick: fn(w, "jobs.tick"),
    heartbeatMinute: fn(w, "jobs.heartbeat_minute"),
    cronRunsPerMin: perMin(w.cronRuns.reduce((a, r) => a + r.runs, 0), w),
    sessionsPerMin: perMin(w.sessions, w),
  };
}

const dist = (d: Dist | null) => (d && d.n ? `${f3(d.median)} / ${f3(d.p95)}` : "–");
const goal = (v: number | null) => (v === null ? "" : v < IDLE_GOAL_MS_PER_MIN ? " (goal met)" : " (goal missed)");

/** [metric, value] rows of one measurement: the console table and the summary's columns. */
export function summaryRows(m: IdleMeasurement): [string, string][] {
  const s = idleSummary(m);
  const c = m.calls;
  return [
    ["window", `${f2(m.window.minutes)} min from ${m.window.startedAt.slice(0, 19)}Z`],
    ["cluster CPU, ms/min (every Postgres process)", f2(s.cpuPerMin)],
    ["  of it: sessions that came and went (pg_cron runs, dblink heartbeats), ms/min", f2(s.comeAndGoPerMin)],
    ["baseline: cluster CPU with every pg_cron entry inactive, ms/min", f2(s.baselinePerMin)],
    [`scheduler CPU = cluster − baseline, ms/min (goal < ${IDLE_GOAL_MS_PER_MIN})`, f2(s.schedulerCpuPerMin) + goal(s.schedulerCpuPerMin)],
    [`SQL: top-level statements (pg_stat_statements, minute heartbeat's sleep left out), ms/min (goal < ${IDLE_GOAL_MS_PER_MIN})`,
      f2(s.statementsPerMin) + goal(s.statementsPerMin)],
    ["SQL: jobs.heartbeat total / self, ms/min (calls/min)", s.heartbeat ? `${f2(s.heartbeat.total)} / ${f2(s.heartbeat.self)} (${f2(s.heartbeat.calls)})` : "–"],
    ["SQL: jobs.tick total, ms/min (calls/min)", s.tick ? `${f2(s.tick.total)} (${f2(s.tick.calls)})` : "–"],
    ["SQL: jobs.heartbeat_minute total incl. pg_sleep / self, ms/min", s.heartbeatMinute ? `${f2(s.heartbeatMinute.total)} / ${f2(s.heartbeatMinute.self)}` : "–"],
    ["pg_cron runs/min", f2(s.cronRunsPerMin)],
    ["sessions started/min (pg_stat_database)", f2(s.sessionsPerMin)],
    ["jobs.heartbeat() warm, median / p95 ms", dist(c.heartbeat.warm)],
    ["jobs.heartbeat() first call of a new session, median / p95 ms", dist(c.heartbeat.freshSession)],
    ["jobs.tick() idle, warm, median / p95 ms", dist(c.tick.warm)],
    ["jobs.tick() idle, first call of a new session, median / p95 ms", dist(c.tick.freshSession)],
    ["new session + first jobs.heartbeat(), client wall median ms / cluster CPU ms", `${f3(c.heartbeat.freshSessionWall?.median)} / ${f2(c.heartbeat.freshSessionCpuMs)}`],
    ["cluster CPU per warm jobs.heartbeat() call, ms", f2(c.heartbeat.warmCpuMs)],
  ];
}

export function printIdle(m: IdleMeasurement): void {
  const rows = summaryRows(m);
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\nIdle cost of the scheduler (${m.label}, commit ${m.commit.head}, pg_cron ${m.pgCron}):`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  for (const n of m.notes) console.log(`  note: ${n}`);
}

/** before, after, then any other label by time. */
function ordered(results: IdleResults): IdleMeasurement[] {
  const rank = (l: string) => (l === "before" ? 0 : l === "after" ? 1 : 2);
  return [...results.measurements].sort((a, b) => rank(a.label) - rank(b.label) || a.startedAt.localeCompare(b.startedAt));
}

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---|").join("")}`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}

/** The runs table's rows, the 30 `duework:idle-NN` entries folded into one row per status. */
function runRows(w: WindowStats): string[][] {
  const rows = new Map<string, { runs: number; wallMs: number; entries: Set<string> }>();
  for (const r of w.cronRuns) {
    const key = `${r.jobname.replace(/^duework:idle-\d+$/, "duework:idle-NN")}\0${r.status}`;
    const row = rows.get(key) ?? { runs: 0, wallMs: 0, entries: new Set() };
    row.runs += r.runs;
    row.wallMs += r.wallMs;
    row.entries.add(r.jobname);
    rows.set(key, row);
  }
  return [...rows].map(([key, r]) => {
    const [name, status] = key.split("\0");
    return [r.entries.size > 1 ? `${name} (${r.entries.size} entries)` : name, status, String(r.runs), f2(perMin(r.runs, w)), r.wallMs.toFixed(0)];
  });
}

function details(m: IdleMeasurement): string[] {
  const w = m.window;
  const mc = m.machine;
  const out: string[] = [
    `### ${m.label}: measured on commit ${m.commit.head}${m.commit.dirty ? " (with uncommitted changes under supabase/)" : ""}`,
    "",
    `Commit ${m.commit.head} "${m.commit.subject}"; migrations last changed in ${m.commit.migrations}. \`date\`: ${m.date}. ` +
      `pg_cron ${m.pgCron}. Machine: ${mc.cpus} vCPU (${mc.cpuModel}), ${mc.memGiB} GiB RAM, ${mc.os}; ${mc.postgres.split(" on ")[0]}. ` +
      `Load average at the window's end: ${w.loadAvgAtEnd.map((x) => x.toFixed(2)).join(", ")} (the machine is shared: other load does not ` +
      "change a process's own CPU time, but may slow it).",
    "",
    `Window ${w.startedAt} → ${w.endedAt} (${f2(w.minutes)} min)` +
      (m.baseline ? `; baseline ${m.baseline.startedAt} → ${m.baseline.endedAt} (${f2(m.baseline.minutes)} min)` : "; no baseline") +
      `. ${m.jobs.defined} jobs (${Object.entries(m.jobs.schedules).map(([s, n]) => `${n} × \`${s}\``).join(", ")}); ` +
      `removed before: ${m.jobs.removedJobs.length} jobs of the migrations, ${m.jobs.removedCronEntries.length} pg_cron entries ` +
      `(${m.jobs.removedCronEntries.map((n) => `\`${n}\``).join(", ")}).`,
    "",
    `Active pg_cron entries in the window: ${m.cronEntries.length}, ` +
      `${m.cronEntries.filter((e) => !e.jobname.startsWith("duework:idle-")).map((e) => `\`${e.jobname}\` \`${e.schedule}\` (\`${e.command}\`)`).join(", ")}` +
      `, and ${m.cronEntries.filter((e) => e.jobname.startsWith("duework:idle-")).length} \`duework:idle-NN\` entries.`,
    "",
    "pg_cron runs that started in the window:",
    "",
    ...table(["entry", "status", "runs", "runs/min", "wall ms (sum)"], runRows(w)),
    "",
    "Function time in the window (pg_stat_user_functions, track_functions = 'all'; total includes callees, self does not; " +
      "`jobs.heartbeat_minute` includes its pg_sleep, `extensions.dblink` the remote heartbeat it waits for; " +
      "these are wall times inside the function, so sessions that start together, such as the ticks of one minute, also wait for the " +
      "CPU and for each other's locks):",
    "",
    ...table(["function", "calls", "calls/min", "total ms/min", "self ms/min", "total ms/call"], w.functions.map((f) =>
      [`\`${f.name}\``, String(f.calls), f2(perMin(f.calls, w)), f3(perMin(f.totalMs, w)), f3(perMin(f.selfMs, w)), f3(f.totalMs / f.calls)])),
    "",
  ];
  if (w.statements) {
    out.push(
      "Top-level statements in the window (pg_stat_statements, planning + execution; \"sleeps\" = left out of the SQL total):",
      "",
      ...table(["statement", "calls", "ms/min", "ms/call", ""], w.statements.slice(0, 15).map((s) =>
        [`\`${s.query.replace(/\s+/g, " ").replaceAll("|", "\\|").slice(0, 90)}\``, String(s.calls), f3(perMin(s.ms, w)), f3(s.ms / s.calls),
          sleeps(s) ? "sleeps" : ""])),
      "",
    );
  }
  out.push(
    `Cluster CPU by process (utime + stime from /proc, ${w.cpu.samples} samples; ${w.cpu.newProcessesSeen} new processes seen by the 200 ms ` +
      `samples, ${w.sessions} sessions started per pg_stat_database):`,
    "",
    ...table(["processes", "window ms/min", "baseline ms/min"], [
      ["all (postmaster and descendants, exited ones included)", f2(perMin(w.cpu.totalMs, w)), m.baseline ? f2(perMin(m.baseline.cpu.totalMs, m.baseline)) : "–"],
      ["came and went inside the window", f2(perMin(w.cpu.comeAndGoMs, w)), m.baseline ? f2(perMin(m.baseline.cpu.comeAndGoMs, m.baseline)) : "–"],
      ...w.cpu.longLived.filter((p) => p.ms > 0).map((p) => [p.name, f2(perMin(p.ms, w)),
        m.baseline ? f2(perMin(m.baseline.cpu.longLived.find((b) => b.name === p.name)?.ms ?? 0, m.baseline)) : "–"]),
    ]),
    "",
    `Single calls with pg_cron paused (server-side \`clock_timestamp()\` around the call, one statement each; warm: ${m.calls.warmCalls} ` +
      `calls in one session after 10 untimed; new session: the first call of each of ${m.calls.freshSessions} new sessions, as every pg_cron 1.4 run ` +
      "and dblink heartbeat is; jobs.tick cycles through the 30 jobs; cluster CPU: /proc over the loop, divided by its calls or sessions):",
    "",
    ...table(["call", "warm median ms", "warm p95 ms", "warm: cluster CPU ms per call", "new session median ms", "new session p95 ms",
      "connect + call, client median ms", "new session: cluster CPU ms per session"],
      (["heartbeat", "tick"] as const).map((k) => {
        const c = m.calls[k];
        return [k === "heartbeat" ? "`jobs.heartbeat()`" : "`jobs.tick(job, 'manual')`", f3(c.warm?.median), f3(c.warm?.p95), f2(c.warmCpuMs),
          f3(c.freshSession?.median), f3(c.freshSession?.p95), f3(c.freshSessionWall?.median), f2(c.freshSessionCpuMs)];
      })),
    "",
  );
  for (const n of m.notes) out.push(`- Note: ${n}`);
  if (m.notes.length) out.push("");
  return out;
}

export function renderIdle(results: IdleResults): string {
  const ms = ordered(results);
  const rows = ms.map(summaryRows);
  const out: string[] = [
    IDLE_HEADING,
    "",
    `Goal: the scheduler's DB time per minute with 30 jobs defined and nothing due under ${IDLE_GOAL_MS_PER_MIN} ms per minute on this ` +
      "machine, measured before and after scheduling moves into the engine.",
    "",
    `Usage: \`${IDLE_COMMAND}\` on the current engine; \`--idle-label after\` for the re-run after the change ` +
      "(`--idle-minutes N`, default 5, `--quick` 2; `--idle-baseline-minutes N`, default 2, `--quick` 1, 0 = none). The run starts its own bench " +
      "stack (a fresh cluster; ports from `DUEWORK_BENCH_DB_PORT`, `DUEWORK_BENCH_API_PORT`, `DUEWORK_BENCH_SANDBOX_PORT` and the seven after it) " +
      "and, run alone, rewrites only this section and `idle` in results.json; a measurement replaces the earlier one with the same label.",
    "",
    "How: the bench database gets exactly 30 jobs (`jobs.define` with `p_name`, `p_target_function`, `p_discover_function`, `p_schedule` only: " +
      "10 × `*/5 * * * *`, 10 × `0 * * * *`, 10 × `30 18 * * *`, a discover function that returns no rows); the migrations' jobs are deleted and " +
      "their pg_cron entries and the domain's own (`bookings:…`, `outreach:…`) unscheduled. `track_functions = 'all'` by ALTER SYSTEM + reload. " +
      "Baseline: every pg_cron entry inactive. Window: pg_cron active, starting 30 s into a minute, whole minutes long. CPU = utime + stime " +
      "of the postmaster and all its descendants from /proc, with the postmaster's cutime + cstime for the backends that exited (every " +
      "pg_cron 1.4 run is a new session; so is each dblink heartbeat). This CPU time is the honest DB time: it includes connection setup, " +
      "which the SQL figures do not. The window holds no minute where the hourly or daily jobs fire (it waits for the next one " +
      "that does not, so windows are alike wherever they fall): 10 `*/5` ticks per five minutes, 2 per minute. Averaged over a day the " +
      "hourly and daily jobs add 10/60 + 10/1440 ≈ 0.17 ticks per minute; the cost of one tick is in the single-call table.",
    "",
    ...table(["", ...ms.map((m) => `${m.label} (commit ${m.commit.head}, pg_cron ${m.pgCron})`)],
      rows[0]?.map(([k], i) => [k, ...rows.map((r) => r[i][1])]) ?? []),
    "",
  ];
  const before = ms.find((m) => m.label === "before");
  if (before) {
    out.push(`BEFORE = commit ${before.commit.head}, the pg_cron ${before.pgCron} path: the minute entry \`duework:heartbeat\` runs ` +
      "`jobs.heartbeat_minute()`, six `jobs.heartbeat()` calls 10 s apart, each in its own dblink session, and each of the 30 jobs has its " +
      "own pg_cron entry `duework:<job>` running `jobs.tick(job, 'cron')`.", "");
  }
  if (!ms.some((m) => m.label === "after")) {
    out.push("AFTER: not measured yet. The AFTER numbers follow the scheduling change (one heartbeat evaluating every job's schedule): " +
      "re-run the command above with `--idle-label after` on that code.", "");
  }
  for (const m of ms) out.push(...details(m));
  return out.join("\n");
}

/** `md` with its idle section replaced by `section` (or `section` appended when it has none). */
export function spliceIdleSection(md: string, section: string): string {
  const start = md.indexOf(`\n${IDLE_HEADING}\n`);
  if (start < 0) return (md.trim() ? md.trimEnd() + "\n\n" : "") + section.trim() + "\n";
  const next = md.slice(start + 1 + IDLE_HEADING.length).search(/\n## /);
  const end = next < 0 ? md.length : start + 1 + IDLE_HEADING.length + next;
  return md.slice(0, start) + "\n" + section.trim() + "\n" + md.slice(end).replace(/^\n*/, next < 0 ? "" : "\n");
}
