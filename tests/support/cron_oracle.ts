// A brute-force oracle for jobs.cron_next: walks real time minute by minute from `after`, reads
// the zone's wall clock (offsets from Intl, not from Postgres) and applies the rules of
// docs/jobs.md "Schedules":
//   - a wall time the clocks jump over (spring forward) fires at the moment they jump;
//   - a wall time that happens twice (fall back) fires at its first occurrence only;
//   - except when the hour field is exactly * or */1 (Meaning.hourAny): real time, so a repeated
//     wall time fires at both occurrences and a vanished one not at all;
//   - day-of-month and day-of-week: either when both are restricted, else both (Meaning.either).
import { DAY_MS, dayMatches, type Meaning } from "./cron_cases";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

export interface Change {
  at: number; // the first instant of the new offset
  before: number; // offsets in ms, east positive
  after: number;
}

/** UTC offset of a zone at an instant, from Intl (ICU's tz data). */
export function intlOffset(format: Intl.DateTimeFormat, at: number): number {
  const p: Record<string, number> = {};
  for (const part of format.formatToParts(at)) if (part.type !== "literal") p[part.type] = Number(part.value);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - Math.floor(at / 1000) * 1000;
}

/** A zone's offset changes between two instants (found daily, then to the minute), and lookups. */
export class ZoneClock {
  readonly changes: Change[] = [];
  private readonly first: number;

  constructor(readonly zone: string, from: number, to: number) {
    const f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
    this.first = intlOffset(f, from);
    let prev = this.first;
    for (let t = from + DAY_MS; t <= to; t += DAY_MS) {
      const off = intlOffset(f, t);
      if (off === prev) continue;
      let lo = t - DAY_MS; // old offset
      let hi = t; // new offset
      while (hi - lo > MINUTE_MS) {
        const mid = Math.floor((lo + hi) / 2 / MINUTE_MS) * MINUTE_MS;
        if (mid <= lo) break;
        if (intlOffset(f, mid) === off) hi = mid;
        else lo = mid;
      }
      this.changes.push({ at: hi, before: prev, after: off });
      prev = off;
    }
  }

  offsetAt(at: number): number {
    let lo = 0;
    let hi = this.changes.length; // changes[lo..hi) not yet decided; find the last with at <= t
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.changes[mid].at <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? this.first : this.changes[lo - 1].after;
  }

  /** Changes with from <= at <= to. */
  changesIn(from: number, to: number): Change[] {
    return this.changes.filter((c) => c.at >= from && c.at <= to);
  }

  /** Within `ms` of a change of offset (the test's "DST case"). */
  nearChange(at: number, ms = 3 * HOUR_MS): boolean {
    return this.changesIn(at - ms, at + ms).length > 0;
  }
}

export type Rule = "plain" | "jump" | "first-of-two" | "second-of-two";

function wallMatches(m: Meaning, wall: number): boolean {
  const day = Math.floor(wall / DAY_MS);
  const minuteOfDay = Math.floor((wall - day * DAY_MS) / MINUTE_MS);
  return m.hour[Math.floor(minuteOfDay / 60)] && m.minute[minuteOfDay % 60] && dayMatches(m, day);
}

/**
 * The first instant strictly after `after` at which the schedule fires, within `capDays`, and the
 * rule that made it fire; null when none. Steps one real minute at a time, except over a whole
 * wall day (or hour) that cannot match when no change of clocks is within 3 hours of it.
 */
export function oracleNext(m: Meaning, clock: ZoneClock, after: number, capDays: number): { at: number | null; rule?: Rule } {
  const end = after + capDays * DAY_MS;
  const days = new Map<number, boolean>();
  const dayOk = (day: number) => {
    let ok = days.get(day);
    if (ok === undefined) days.set(day, (ok = dayMatches(m, day)));
    return ok;
  };
  let u = Math.floor(after / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  while (u <= end) {
    const off = clock.offsetAt(u);
    const wall = u + off;
    const day = Math.floor(wall / DAY_MS);
    const intoDay = wall - day * DAY_MS;
    const skipTo = !dayOk(day) ? u + DAY_MS - intoDay
      : !m.hour[Math.floor(intoDay / HOUR_MS)] ? u + HOUR_MS - (intoDay % HOUR_MS) : null;
    if (skipTo !== null && clock.changesIn(u - 3 * HOUR_MS, skipTo + 3 * HOUR_MS).length === 0) {
      u = skipTo;
      continue;
    }
    const prevOff = clock.offsetAt(u - MINUTE_MS);
    if (off > prevOff && !m.hourAny) {
      // The clocks jumped at u over the wall times [u + prevOff, u + off).
      for (let w = u + prevOff; w < wall; w += MINUTE_MS) if (wallMatches(m, w)) return { at: u, rule: "jump" };
    }
    if (wallMatches(m, wall)) {
      // The same wall time at another instant (clocks going back near u)?
      let other: number | null = null;
      for (const c of clock.changesIn(u - 6 * HOUR_MS, u + 6 * HOUR_MS)) {
        for (const o of [c.before, c.after]) {
          if (o !== off && clock.offsetAt(wall - o) === o) other = wall - o;
        }
      }
      if (other === null) return { at: u, rule: "plain" };
      if (other > u) return { at: u, rule: "first-of-two" };
      if (m.hourAny) return { at: u, rule: "second-of-two" };
    }
    u += MINUTE_MS;
  }
  return { at: null };
}

/** "2027-03-28 01:30 (+01:00)": a wall clock for messages. */
export function wallText(clock: ZoneClock, at: number): string {
  const off = clock.offsetAt(at);
  const w = new Date(at + off).toISOString().slice(0, 16).replace("T", " ");
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off) / MINUTE_MS;
  return `${w} (${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")})`;
}
