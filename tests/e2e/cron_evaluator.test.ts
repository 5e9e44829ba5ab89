// jobs.parse_cron / jobs.cron_next (the engine's own cron evaluator, in plpgsql) against
// cron-parser and against a brute-force oracle of the documented rules (tests/support/
// cron_oracle.ts), on seeded random expressions, zones and instants 2026-2030. Each batch is one
// SQL query. Away from a change of clocks the answers must equal cron-parser's; within 3 hours
// of one, and wherever cron-parser's rules differ from Vixie's (see libraryText in
// tests/support/cron_cases.ts), they must equal the oracle's.
import { CronExpressionParser } from "cron-parser";
import { afterAll, describe, expect, it } from "vitest";
import { type Expr, prng, randomExpr, type Rng, yearlyExpr, DAY_MS } from "../support/cron_cases";
import { HOUR_MS, MINUTE_MS, oracleNext, type Rule, wallText, ZoneClock } from "../support/cron_oracle";
import { db, stackInfo } from "../support/stack";

const sql = db(stackInfo());
afterAll(async () => {
  await sql.end();
});

const DST_ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Pacific/Auckland"];
// Sao Paulo has kept -03:00 since 2019: a zone west of Greenwich without changes.
const ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/Sao_Paulo", ...DST_ZONES];
const FROM = Date.UTC(2026, 0, 1);
const TO = Date.UTC(2031, 0, 1);
// The oracle's clocks: cron_next looks up to five years ahead of `after`.
const clocks = new Map(ZONES.map((z) => [z, new ZoneClock(z, Date.UTC(2025, 6, 1), Date.UTC(2037, 0, 1))]));
const clock = (zone: string) => clocks.get(zone)!;
const CHANGES = DST_ZONES.flatMap((zone) => clock(zone).changesIn(FROM, TO).map((c) => ({ zone, at: c.at })));

interface Case {
  expr: Expr;
  zone: string;
  after: number;
}

function randomAfter(rng: Rng): number {
  const t = FROM + Math.floor(rng.next() * (TO - FROM));
  const r = rng.next();
  if (r < 0.1) return Math.floor(t / HOUR_MS) * HOUR_MS; // on the hour
  if (r < 0.35) return Math.floor(t / MINUTE_MS) * MINUTE_MS; // on a minute, often a slot itself
  return t;
}

/** All the cases' next slots from SQL, in one query (ms since the epoch, or null). */
async function sqlNext(cases: Case[]): Promise<Array<number | null>> {
  const input = cases.map((c, i) => ({ i, expr: c.expr.text, zone: c.zone, after: new Date(c.after).toISOString() }));
  const rows = await sql<Array<{ i: number; next: number | null }>>`
    select c.i, (extract(epoch from n.next) * 1000)::float8 as next
      from jsonb_to_recordset(${sql.json(input)}) as c(i int, expr text, zone text, after timestamptz)
      cross join lateral jobs.cron_next(jobs.parse_cron(c.expr), c.zone, c.after) as n(next)
     order by c.i`;
  expect(rows.length).toBe(cases.length);
  return rows.map((r) => r.next);
}

/** cron-parser's next slot; an error when it finds none (30 February) or gives up (its loop limit). */
function libraryNext(text: string, zone: string, after: number): number | Error {
  try {
    return CronExpressionParser.parse(text, { currentDate: new Date(after), tz: zone }).next().getTime();
  } catch (e) {
    return e as Error;
  }
}

function refusedByLibrary(expr: string): boolean {
  try {
    CronExpressionParser.parse(expr).next();
    return false;
  } catch {
    return true;
  }
}

const iso = (t: number | null | undefined) => (t == null ? "null" : new Date(t).toISOString());

function describeCase(c: Case, got: number | null, want: number | null, what: string): string {
  const cl = clock(c.zone);
  return `${JSON.stringify(c.expr.text)} in ${c.zone} after ${iso(c.after)} (${wallText(cl, c.after)}): ` +
    `SQL ${iso(got)}${got == null ? "" : ` (${wallText(cl, got)})`}, ${what} ${iso(want)}${want == null ? "" : ` (${wallText(cl, want)})`}`;
}

describe("the zones' clock changes", () => {
  it("Postgres and Intl agree on every change of offset mid-2025 to 2036 in the zones tested", async () => {
    const changes = ZONES.flatMap((zone) =>
      clock(zone).changes.map((c) => ({ zone, at: new Date(c.at).toISOString(), before: c.before / 1000, after: c.after / 1000 })));
    const wrong = await sql`
      select c.zone, c.at from jsonb_to_recordset(${sql.json(changes)}) as c(zone text, at timestamptz, before int, after int)
       where extract(epoch from jobs.zone_offset(c.at - interval '1 minute', c.zone)) <> c.before
          or extract(epoch from jobs.zone_offset(c.at, c.zone)) <> c.after`;
    expect(wrong).toEqual([]);
    const counted = await sql<Array<{ zone: string; n: number }>>`
      select zone, count(*)::int as n from (
        select z.zone, jobs.zone_offset(t, z.zone) <> jobs.zone_offset(t - interval '1 day', z.zone) as changed
          from unnest(${ZONES}::text[]) as z(zone),
               generate_series('2025-07-02'::timestamptz, '2037-01-01', interval '1 day') as t) x
       where changed group by zone`;
    const pg = Object.fromEntries(counted.map((r) => [r.zone, r.n]));
    for (const zone of ZONES) expect(pg[zone] ?? 0, zone).toBe(clock(zone).changes.length);
    expect(clock("Europe/London").changes.length).toBeGreaterThan(15);
    expect(clock("Australia/Lord_Howe").changes.every((c) => Math.abs(c.after - c.before) === 30 * MINUTE_MS)).toBe(true);
  });
});

describe("cron_next against cron-parser", () => {
  it("equals cron-parser away from changes of clocks, and the oracle near them", async () => {
    const rng = prng(20261204);
    const cases: Case[] = Array.from({ length: 3000 }, () => {
      const expr = randomExpr(rng);
      // One in seven starts up to a day before a change of clocks, so that some answers are near one.
      if (rng.chance(1 / 7)) {
        const c = rng.pick(CHANGES);
        return { expr, zone: c.zone, after: c.at - Math.floor(rng.next() * DAY_MS) };
      }
      return { expr, zone: rng.pick(ZONES), after: randomAfter(rng) };
    });
    const got = await sqlNext(cases);
    const counts = { equal: 0, dst: 0, dstLibraryDiffers: 0, notComparable: 0, never: 0, libraryGaveUp: 0, bothDayFields: 0 };
    const mismatches: string[] = [];
    const oracleWrong: string[] = [];
    const gaveUp: string[] = [];
    cases.forEach((c, i) => {
      const cl = clock(c.zone);
      const sqlAt = got[i];
      const result = c.expr.library === null ? undefined : libraryNext(c.expr.library, c.zone, c.after);
      const lib = result === undefined || result instanceof Error ? null : result;
      const oracle = oracleNext(c.expr.meaning, cl, c.after, 1831).at;
      if (c.expr.meaning.either) counts.bothDayFields++;
      if (sqlAt === null) counts.never++;
      // cron-parser 5 stops at its loop limit on some days the clocks change in (e.g. "* 20-22 * * 0"
      // in Australia/Lord_Howe on 1 April 2029): counted, and checked by the oracle.
      const libraryGaveUp = result instanceof Error && result.message.includes("loop limit") && sqlAt !== null;
      const dst = (sqlAt !== null && cl.nearChange(sqlAt)) || (lib != null && cl.nearChange(lib));
      if (result === undefined || dst || libraryGaveUp) {
        if (result === undefined) counts.notComparable++;
        else if (dst) {
          counts.dst++;
          if (lib !== sqlAt) counts.dstLibraryDiffers++;
        } else {
          counts.libraryGaveUp++;
          gaveUp.push(describeCase(c, sqlAt, null, "cron-parser"));
        }
        if (sqlAt !== oracle) mismatches.push(describeCase(c, sqlAt, oracle, "oracle"));
        return;
      }
      if (sqlAt === lib) counts.equal++;
      else mismatches.push(describeCase(c, sqlAt, lib, "cron-parser"));
      // The oracle itself, checked where cron-parser is trusted.
      if (oracle !== lib) oracleWrong.push(describeCase(c, oracle, lib, "oracle vs cron-parser"));
    });
    console.log(
      `${cases.length} cases: ${counts.equal} equal to cron-parser away from a change of clocks; ` +
        `${counts.dst} near a change (within 3 h) checked by the oracle (cron-parser differs on ${counts.dstLibraryDiffers}); ` +
        `${counts.notComparable} where cron-parser's day rule differs from Vixie's, checked by the oracle; ` +
        `${counts.libraryGaveUp} where cron-parser gave up (loop limit), checked by the oracle; ` +
        `${counts.bothDayFields} with both day fields restricted; ${counts.never} that never fire in five years; ` +
        `${mismatches.length} mismatches`,
    );
    if (gaveUp.length > 0) console.log(`cron-parser gave up on:\n  ${gaveUp.join("\n  ")}`);
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect(oracleWrong.slice(0, 10)).toEqual([]);
    expect(counts.equal).toBeGreaterThan(2500);
    expect(counts.dst).toBeGreaterThan(10);
  });
});

describe("cron_next against a brute-force oracle", () => {
  it("equals the oracle minute by minute, changes of clocks included", async () => {
    const rng = prng(4242);
    const cases: Case[] = Array.from({ length: 500 }, () => {
      let zone = rng.pick(ZONES);
      let after = randomAfter(rng);
      if (rng.chance(0.65)) {
        // Shortly before (or just after) a change of clocks, on the minute or not.
        const c = rng.pick(CHANGES);
        zone = c.zone;
        after = c.at - Math.floor(rng.next() * 3 * HOUR_MS) + HOUR_MS;
        if (rng.chance(0.5)) after = Math.floor(after / MINUTE_MS) * MINUTE_MS;
      }
      const day = Math.floor((after + clock(zone).offsetAt(after)) / DAY_MS);
      return { expr: yearlyExpr(rng, day), zone, after };
    });
    const got = await sqlNext(cases);
    const rules: Record<Rule, number> = { plain: 0, jump: 0, "first-of-two": 0, "second-of-two": 0 };
    let near = 0;
    const mismatches: string[] = [];
    cases.forEach((c, i) => {
      const want = oracleNext(c.expr.meaning, clock(c.zone), c.after, 400);
      expect(want.at, `the generator promised a slot within a year: ${c.expr.text}`).not.toBeNull();
      rules[want.rule!]++;
      if (clock(c.zone).nearChange(want.at!)) near++;
      if (got[i] !== want.at) mismatches.push(`${describeCase(c, got[i], want.at, "oracle")} [${want.rule}]`);
    });
    console.log(
      `${cases.length} oracle cases: ${near} answers within 3 h of a change of clocks; rules: ` +
        `${rules.plain} plain, ${rules.jump} at a jump forward, ${rules["first-of-two"]} first of a repeated time, ` +
        `${rules["second-of-two"]} second of a repeated time (hour *); ${mismatches.length} mismatches`,
    );
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect(rules.jump).toBeGreaterThan(5); // (jumps of jobs that run every hour vanish instead)
    expect(rules["first-of-two"]).toBeGreaterThan(10);
    expect(rules["second-of-two"]).toBeGreaterThan(2);
  });
});

describe("chains of slots through changes of clocks", () => {
  it("each slot after the one before equals the oracle's (after = a slot itself)", async () => {
    const rng = prng(777);
    const STEPS = 12;
    const cases: Case[] = Array.from({ length: 150 }, () => {
      const c = rng.pick(CHANGES);
      const after = c.at - Math.floor(rng.next() * 6 * HOUR_MS);
      const day = Math.floor((after + clock(c.zone).offsetAt(after)) / DAY_MS);
      return { expr: yearlyExpr(rng, day, 0.9), zone: c.zone, after };
    });
    const input = cases.map((c, i) => ({ i, expr: c.expr.text, zone: c.zone, after: new Date(c.after).toISOString() }));
    const rows = await sql<Array<{ i: number; k: number; at: number | null }>>`
      with recursive c as (
        select * from jsonb_to_recordset(${sql.json(input)}) as c(i int, expr text, zone text, after timestamptz)
      ), s(i, k, at) as (
        select c.i, 0, c.after from c
        union all
        select s.i, s.k + 1, jobs.cron_next(jobs.parse_cron(c.expr), c.zone, s.at)
          from s join c using (i) where s.k < ${STEPS} and s.at is not null
      )
      select i, k, (extract(epoch from at) * 1000)::float8 as at from s where k > 0 order by i, k`;
    const chains = new Map<number, Array<number | null>>();
    for (const r of rows) chains.set(r.i, [...(chains.get(r.i) ?? []), r.at]);
    let slots = 0;
    let near = 0;
    const rules: Record<Rule, number> = { plain: 0, jump: 0, "first-of-two": 0, "second-of-two": 0 };
    const mismatches: string[] = [];
    cases.forEach((c, i) => {
      const got = chains.get(i) ?? [];
      let after = c.after;
      for (let k = 0; k < STEPS; k++) {
        const { at: want, rule } = oracleNext(c.expr.meaning, clock(c.zone), after, 400);
        if (rule) rules[rule]++;
        if (got[k] !== want) {
          mismatches.push(`step ${k + 1}: ${describeCase({ ...c, after }, got[k] ?? null, want, "oracle")}`);
          break;
        }
        if (want === null || want > TO) break; // the oracle's clocks end in 2036
        slots++;
        if (clock(c.zone).nearChange(want)) near++;
        after = want;
      }
    });
    console.log(
      `${cases.length} chains: ${slots} slots, ${near} within 3 h of a change of clocks (${rules.jump} at a jump forward, ` +
        `${rules["first-of-two"]} first and ${rules["second-of-two"]} second of a repeated time); ${mismatches.length} chains differ`,
    );
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect(near).toBeGreaterThan(200);
    expect(rules["second-of-two"]).toBeGreaterThan(10);
  });

  // docs/jobs.md "Schedules": "a job that runs every hour (hour field *) follows real time
  // instead: it runs 25 times on the long day and 23 times on the short one, once per real hour."
  // Fails today for "30 * * * *" on the short day: cron_next fires the 01:30 that does not exist
  // at the jump (02:00 BST, 01:00 UTC) and then 02:30 BST (01:30 UTC) as well, 24 runs, two in
  // one real hour. Vixie cron, like the docs, runs an hour-* job by the new time and skips the
  // vanished slots. (The oracle follows the migration's header: every vanished slot fires at the
  // jump; whichever way this is settled, cron_oracle.ts's "jump" rule follows.)
  it.each([
    ["0 * * * *", "2027-03-28", 23],
    ["30 * * * *", "2027-03-28", 23],
    ["0 * * * *", "2027-10-31", 25],
    ["30 * * * *", "2027-10-31", 25],
  ])("%s in Europe/London on %s runs %i times, once per real hour", async (expr, day, runs) => {
    const rows = await sql<Array<{ at: Date }>>`
      with recursive s(at) as (
        select (${day}::date::timestamp at time zone 'Europe/London') - interval '1 second'
        union all
        select jobs.cron_next(jobs.parse_cron(${expr}), 'Europe/London', s.at) from s
         where s.at < ((${day}::date + 1)::timestamp at time zone 'Europe/London')
      )
      select at from s where at >= (${day}::date::timestamp at time zone 'Europe/London')
                         and at < ((${day}::date + 1)::timestamp at time zone 'Europe/London')`;
    const hours = new Set(rows.map((r) => Math.floor(r.at.getTime() / HOUR_MS)));
    expect({ runs: rows.length, realHours: hours.size }, rows.map((r) => r.at.toISOString()).join(" ")).toEqual({ runs, realHours: runs });
  });
});

describe("expressions the parser refuses", () => {
  // [expression, cron-parser also refuses it]. cron-parser reads six fields as seconds first,
  // knows L, ? and #, and reads '' as every minute: there it is no sanity check.
  const bad: Array<[string, boolean]> = [
    ["61 * * * *", true],
    ["0 0 1 1 * *", false],
    ["0 0 L * *", false],
    ["0 0 ? * *", false],
    ["0 0 * * 1#2", false],
    ["0 5-1 * * *", true],
    ["*/0 * * * *", true],
    ["0 0 1 foo *", true],
    ["10 seconds", true],
    ["", false],
    ["0 24 * * *", true],
    ["0 0 0 * *", true],
    ["0 0 * 13 *", true],
    ["0 0 * * 8", true],
    ["1,,2 * * * *", true],
    ["*/5/2 * * * *", true],
    ["@every", true],
  ];
  it.each(bad)("refuses %j with SQLSTATE 22023 naming it", async (expr, libraryRefuses) => {
    const err = await sql`select jobs.parse_cron(${expr})`.then(() => null, (e) => e as { code: string; message: string });
    expect(err, `parse_cron accepted ${JSON.stringify(expr)}`).not.toBeNull();
    expect(err!.code).toBe("22023");
    expect(err!.message).toContain(`schedule "${expr}"`);
    expect(libraryRefuses ? refusedByLibrary(expr) : !refusedByLibrary(expr), "cron-parser's verdict").toBe(true);
  });
});
