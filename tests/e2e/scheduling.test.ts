// The engine's scheduler on the running stack: pg_cron runs the heartbeat, the heartbeat fires the
// jobs' due slots. A job whose slots passed "while the database was down" (next_run_at three
// days ago) runs once with catch_up 'once' and not at all with 'skip'.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { db, eventually, stackInfo } from "../support/stack";

const sql = db(stackInfo());
const ONCE = "e2e-sched-once";
const SKIP = "e2e-sched-skip";

beforeAll(async () => {
  await sql`create schema if not exists e2e_sched`;
  await sql`
    create or replace function e2e_sched.nothing_due(p_config jsonb) returns table (key text, payload jsonb)
    language sql stable set search_path = '' as $$ select null::text, null::jsonb where false $$`;
  for (const [name, catchUp] of [[ONCE, "once"], [SKIP, "skip"]]) {
    await sql`select jobs.define(p_name => ${name}, p_target_function => 'refresh-token',
                                 p_discover_function => 'e2e_sched.nothing_due(jsonb)', p_schedule => '0 0 * * *',
                                 p_timezone => 'Asia/Kolkata', p_catch_up => ${catchUp})`;
  }
});

afterAll(async () => {
  await sql`delete from jobs.job where name in (${ONCE}, ${SKIP})`;
  await sql`drop schema if exists e2e_sched cascade`;
  await sql.end();
});

describe("the heartbeat fires the jobs' schedules", () => {
  it("after three days of downtime: one run with catch_up once, none with skip", async () => {
    // Three local midnights passed unfired.
    await sql`
      update jobs.job
         set next_run_at = jobs.cron_next(schedule_spec, timezone, now() - interval '3 days')
       where name in (${ONCE}, ${SKIP})`;

    const once = await eventually(async () => {
      const [job] = await sql`select last_slot_outcome, last_slot_missed, next_run_at > now() as ahead
                                from jobs.job where name = ${ONCE}`;
      return job.last_slot_outcome !== null && job;
    }, "a heartbeat to fire the missed slots", 30_000);
    expect(once).toMatchObject({ last_slot_outcome: "caught_up", last_slot_missed: 3, ahead: true });

    const skip = await eventually(async () => {
      const [job] = await sql`select last_slot_outcome, last_slot_missed, next_run_at > now() as ahead
                                from jobs.job where name = ${SKIP}`;
      return job.last_slot_outcome !== null && job;
    }, "a heartbeat to skip the missed slots", 30_000);
    expect(skip).toMatchObject({ last_slot_outcome: "skipped", last_slot_missed: 3, ahead: true });

    // The next heartbeat (10 s later) changes nothing: one run in all, for the latest slot.
    await new Promise((r) => setTimeout(r, 12_000));
    const runs = await sql`select job_name, trigger, missed_slots, (slot_at at time zone 'Asia/Kolkata')::time as local
                             from jobs.run where job_name in (${ONCE}, ${SKIP})`;
    expect(runs).toEqual([{ job_name: ONCE, trigger: "cron", missed_slots: 3, local: "00:00:00" }]);
  }, 60_000);
});
