// The harness's arithmetic: recovery from a timeline, per-provider counts, the fault tally.
import assert from "node:assert/strict";
import { perProvider, type Snapshot, timeToNMore } from "./drain.ts";
import { tally, twentyPercent } from "./provider_faults.ts";
import { seeded } from "./random.ts";
import type { Workload } from "./types.ts";

const snap = (at: number, done: number, total = 100): Snapshot => ({ at, total, done, dead: 0, perWorkload: [] });

Deno.test("timeToNMore: from the last snapshot at or before the moment, to the first with n more done", () => {
  const t = [snap(0, 10), snap(100, 20), snap(200, 20), snap(300, 45), snap(400, 80)];
  assert.equal(timeToNMore(t, 150, 25), 150); // base 20 at 100 → 45 at 300
  assert.equal(timeToNMore(t, 150, 61), null); // 81 never reached
  // Near the end, fewer than n items are left: the last one counts.
  assert.equal(timeToNMore([snap(0, 95), snap(50, 100)], 10, 50), 40);
});

Deno.test("perProvider: split counts win; a one-provider workload's items are its provider's", () => {
  const w = (providers: string[]) => ({ providers } as unknown as Workload);
  const s: Snapshot = {
    at: 0,
    total: 30,
    done: 12,
    dead: 1,
    perWorkload: [
      { total: 20, done: 8, dead: 1, byProvider: { twilio: { total: 10, done: 3, dead: 1 }, resend: { total: 10, done: 5, dead: 0 } } },
      { total: 10, done: 4, dead: 0 },
    ],
  };
  const m = perProvider([w(["twilio", "resend"]), w(["google_oauth"])], s);
  assert.deepEqual(Object.fromEntries(m), {
    twilio: { total: 10, done: 3, dead: 1 },
    resend: { total: 10, done: 5, dead: 0 },
    google_oauth: { total: 10, done: 4, dead: 0 },
  });
});

Deno.test("twentyPercent: the rates compound to 20 % of requests", () => {
  let spared = 1;
  for (const f of twentyPercent("twilio")) spared *= 1 - f.rate!;
  assert.ok(Math.abs(1 - spared - 0.2) < 1e-9, `struck ${1 - spared}`);
});

Deno.test("tally: only the given providers; struck, struck after the effect, the last strike", () => {
  const log = [
    { provider: "twilio", method: "POST", path: "/m", status: 201, time: "2026-12-01T00:00:00.000Z" },
    { provider: "twilio", method: "POST", path: "/m", status: 503, time: "2026-12-01T00:00:01.000Z", fault_id: "f1" },
    { provider: "twilio", method: "POST", path: "/m", status: 0, time: "2026-12-01T00:00:02.000Z", fault_id: "f2", fault_after: true },
    { provider: "resend", method: "POST", path: "/e", status: 503, time: "2026-12-01T00:00:03.000Z", fault_id: "f3" },
  ];
  assert.deepEqual(tally(log, ["twilio"]), { requests: 3, struck: 2, struckAfter: 1, lastStruckAt: Date.parse("2026-12-01T00:00:02.000Z") });
});

Deno.test("seeded: the same seed gives the same fault points", () => {
  const a = seeded(42), b = seeded(42);
  const xs = Array.from({ length: 5 }, () => a());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});
