// Random cron expressions for the differential test of jobs.parse_cron / jobs.cron_next
// (tests/e2e/cron_evaluator.test.ts): a seeded PRNG, a grammar of the Vixie syntax the engine
// accepts, and each expression's meaning computed from the grammar (not by parsing the text).

/** mulberry32: small, fast, deterministic for a seed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}
export type Rng = ReturnType<typeof prng>;

/** What a schedule matches on a wall clock, per docs/jobs.md "Schedules". */
export interface Meaning {
  minute: boolean[];
  hour: boolean[];
  dom: boolean[]; // index 1-31
  month: boolean[]; // index 1-12
  dow: boolean[]; // index 0-6, Sunday 0
  /** Both day fields restricted (neither starts with *): a day matches either. */
  either: boolean;
  /** Hour field exactly * or *\/1: follows real time through a repeated hour. */
  hourAny: boolean;
}

export interface Expr {
  /** What SQL parses. */
  text: string;
  /** The same schedule as cron-parser reads it (see libraryText), or null: not comparable. */
  library: string | null;
  meaning: Meaning;
}

type Item =
  | { kind: "star"; step?: number }
  | { kind: "num"; n: number; step?: number } // n/s runs from n to the end of the field
  | { kind: "range"; a: number; b: number; step?: number };

interface FieldDef {
  min: number;
  /** The end of the field for * and n/s (day-of-week: 7, Sunday again, as in Vixie cron). */
  end: number;
  /** Highest number accepted (day-of-week: 7). */
  max: number;
  names?: readonly string[];
}
const MINUTE: FieldDef = { min: 0, end: 59, max: 59 };
const HOUR: FieldDef = { min: 0, end: 23, max: 23 };
const DOM: FieldDef = { min: 1, end: 31, max: 31 };
const MONTH: FieldDef = {
  min: 1, end: 12, max: 12,
  names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const DOW: FieldDef = { min: 0, end: 7, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

function values(def: FieldDef, items: Item[]): boolean[] {
  const set = new Array<boolean>(def.max + 1).fill(false);
  for (const it of items) {
    const step = it.step ?? 1;
    const [lo, hi] = it.kind === "star" ? [def.min, def.end]
      : it.kind === "num" ? [it.n, it.step !== undefined ? def.end : it.n]
      : [it.a, it.b];
    for (let v = lo; v <= hi; v += step) set[v] = true;
  }
  if (def === DOW && set[7]) set[0] = true;
  return def === DOW ? set.slice(0, 7) : set;
}

function renderNumber(rng: Rng, def: FieldDef, n: number): string {
  if (def.names && n - def.min < def.names.length && rng.chance(0.35)) {
    const name = def.names[n - def.min];
    return rng.pick([name, name.toUpperCase(), name[0].toUpperCase() + name.slice(1)]);
  }
  return String(n);
}

function renderItem(rng: Rng, def: FieldDef, it: Item): string {
  const step = it.step !== undefined ? `/${it.step}` : "";
  if (it.kind === "star") return `*${step}`;
  if (it.kind === "num") return `${renderNumber(rng, def, it.n)}${step}`;
  return `${renderNumber(rng, def, it.a)}-${renderNumber(rng, def, it.b)}${step}`;
}

function randomItem(rng: Rng, def: FieldDef, first: boolean): Item {
  const span = def.end - def.min + 1;
  const step = () => (rng.chance(0.9) ? rng.int(1, Math.max(2, Math.ceil(span / 2))) : rng.int(span, span + 40));
  const kind = rng.pick(["num", "num", "range", "range", "starstep", "rangestep", "numstep", first ? "star" : "num"]);
  if (kind === "star") return { kind: "star" };
  if (kind === "starstep") return { kind: "star", step: step() };
  if (kind === "num" || kind === "numstep") {
    // 7/s (Sunday to the end of the week) is refused by the engine; it is not generated.
    const n = rng.int(def.min, kind === "numstep" ? def.end : def.max);
    return kind === "num" ? { kind, n } : { kind: "num", n, step: step() };
  }
  const a = rng.int(def.min, def.max);
  const b = rng.int(a, Math.min(def.max, a + rng.int(0, span)));
  return kind === "range" ? { kind, a, b } : { kind: "range", a, b, step: step() };
}

interface Field {
  text: string;
  items: Item[];
}

function randomField(rng: Rng, def: FieldDef, pStar: number): Field {
  if (rng.chance(pStar)) return { text: "*", items: [{ kind: "star" }] };
  const count = rng.pick([1, 1, 1, 1, 1, 2, 2, 3]);
  const items = Array.from({ length: count }, (_, i) => randomItem(rng, def, i === 0));
  return { text: items.map((it) => renderItem(rng, def, it)).join(","), items };
}

const MACROS: Record<string, string> = {
  "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
  "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
};

function meaningOf(f: Field[]): Meaning {
  const [mi, h, dom, mon, dow] = f;
  return {
    minute: values(MINUTE, mi.items),
    hour: values(HOUR, h.items),
    dom: values(DOM, dom.items),
    month: values(MONTH, mon.items),
    dow: values(DOW, dow.items),
    either: !dom.text.startsWith("*") && !dow.text.startsWith("*"),
    hourAny: h.text === "*" || h.text === "*/1",
  };
}

// The expression as cron-parser should read it, or null where its rules differ from Vixie's and
// no rewrite says the same thing (those cases are checked against the oracle instead):
//   - cron-parser treats a day field as unrestricted only when it is exactly "*"; Vixie (and the
//     engine) when it starts with "*". So "0 0 */2 * 1" is Mondays on odd days for the engine and
//     Mondays or odd days for cron-parser: not comparable unless the other day field is "*".
//   - a list whose items overlap ("*/5,10", "0,7" in day-of-week): cron-parser refuses duplicate
//     values, Vixie takes the union. Given as the list of the values.
//   - macros: cron-parser knows them in lower case only, and not @midnight (given as "0 0 * * *").
function libraryText(f: Field[], macro: string | null): string | null {
  if (macro) return macro.toLowerCase() === "@midnight" ? MACROS["@midnight"] : macro.toLowerCase();
  const [, , dom, , dow] = f;
  const starLike = (x: Field) => x.text.startsWith("*") && x.text !== "*";
  if ((starLike(dom) && dow.text !== "*") || (starLike(dow) && dom.text !== "*")) return null;
  const defs = [MINUTE, HOUR, DOM, MONTH, DOW];
  return f.map((x, i) => {
    const perItem = x.items.map((it) => values(defs[i], [it]));
    const union = values(defs[i], x.items);
    const overlap = perItem.reduce((n, v) => n + v.filter(Boolean).length, 0) > union.filter(Boolean).length;
    if (overlap) return union.flatMap((on, v) => (on ? [v] : [])).join(",");
    return x.text;
  }).join(" ");
}

const SPACES = [" ", " ", " ", "  ", "\t", " \t "];

function assemble(rng: Rng, f: Field[], macro: string | null): Expr {
  const fields = f.map((x) => x.text).reduce((acc, x) => acc + rng.pick(SPACES) + x);
  const text = macro ?? (rng.chance(0.05) ? ` ${fields}\t` : fields);
  return { text, library: libraryText(f, macro), meaning: meaningOf(f) };
}

/** Any expression of the grammar: every syntax form, both day fields restricted now and then. */
export function randomExpr(rng: Rng): Expr {
  if (rng.chance(0.06)) {
    const macro = rng.pick(Object.keys(MACROS));
    const fields = MACROS[macro].split(" ").map((t, i) => reparse(i, t));
    return assemble(rng, fields, rng.chance(0.2) ? macro.toUpperCase() : macro);
  }
  const f = [
    randomField(rng, MINUTE, 0.1),
    rng.chance(0.1) ? reparse(1, "*/1") : randomField(rng, HOUR, 0.25),
    randomField(rng, DOM, 0.55),
    randomField(rng, MONTH, 0.6),
    randomField(rng, DOW, 0.55),
  ];
  return assemble(rng, f, null);
}

/** Hour fields that reach the hours clocks change in (00:00-03:00 local, 23:00 in Santiago). */
const CHANGE_HOURS = ["*", "*", "*", "*", "*/1", "*/1", "1", "2", "3", "0", "23", "1,2", "0-3", "2-4", "1-2/1", "*/2", "0,2,22"];

/**
 * An expression for the brute-force oracle: fires at least once in any 366 days (checked on the
 * calendar from `fromDay`, a day number), and (by default half the time) at the hours clocks
 * change in, on most days.
 */
export function yearlyExpr(rng: Rng, fromDay: number, atChangeHours = 0.5): Expr {
  for (;;) {
    const e = randomExpr(rng);
    const text = e.text;
    let x = e;
    if (!text.startsWith("@") && rng.chance(atChangeHours)) {
      const parts = text.trim().split(/\s+/);
      parts[1] = rng.pick(CHANGE_HOURS);
      for (const i of [2, 3, 4]) if (rng.chance(0.6)) parts[i] = "*";
      const f = parts.map((t, i) => reparse(i, t));
      x = assemble(rng, f, null);
    }
    if (firesWithin(x.meaning, fromDay, 366)) return x;
  }
}

/** A field written by hand (macros, the hours clocks change in), with its items. */
function reparse(i: number, text: string): Field {
  const def = [MINUTE, HOUR, DOM, MONTH, DOW][i];
  const items = text.split(",").map((part) => {
    const [base, s] = part.split("/");
    const step = s === undefined ? undefined : Number(s);
    if (base === "*") return { kind: "star", step } as Item;
    const [a, b] = base.split("-").map((p) => nameValue(def, p));
    return (b === undefined ? { kind: "num", n: a, step } : { kind: "range", a, b, step }) as Item;
  });
  return { text, items };
}

function nameValue(def: FieldDef, p: string): number {
  const i = def.names?.indexOf(p.toLowerCase()) ?? -1;
  return i >= 0 ? i + def.min : Number(p);
}

export const DAY_MS = 86_400_000;

/** The calendar of a day number (days since 1970-01-01). */
function calendar(day: number) {
  const d = new Date(day * DAY_MS);
  return { month: d.getUTCMonth() + 1, dom: d.getUTCDate(), dow: d.getUTCDay() };
}

export function dayMatches(m: Meaning, day: number): boolean {
  const c = calendar(day);
  if (!m.month[c.month]) return false;
  return m.either ? m.dom[c.dom] || m.dow[c.dow] : m.dom[c.dom] && m.dow[c.dow];
}

function firesWithin(m: Meaning, fromDay: number, days: number): boolean {
  for (let d = fromDay; d < fromDay + days; d++) if (dayMatches(m, d)) return true;
  return false;
}
