// keepAlive with real (tiny) processes: restart with the same argv, give up on a crash loop, and
// never restart once the stack is stopping.
import assert from "node:assert/strict";
import { type Child, spawnChild } from "./processes.ts";
import { keepAlive, type KeepAliveOptions, RestartBudget } from "./keep-alive.ts";

const until = async (check: () => boolean, what: string, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("RestartBudget: maxRestarts exits per window, then refuses until the window slides", () => {
  const b = new RestartBudget({ delayMs: 0, maxRestarts: 5, windowMs: 60_000 });
  for (let i = 0; i < 5; i++) assert.equal(b.allow(1_000 + i), true, `exit ${i + 1}`);
  assert.equal(b.allow(2_000), false, "the 6th exit within 60 s");
  assert.equal(b.recent, 6);
  assert.equal(b.allow(62_001), true, "61 s later only the 2_000 exit is still in the window");
});

/** A harness around keepAlive: every instance spawned, every log line, the give-up error. */
async function harness(argv: string[], policy: KeepAliveOptions["policy"]) {
  const logDir = await Deno.makeTempDir({ prefix: "keep-alive-" });
  const spawned: Child[] = [];
  const logs: string[] = [];
  const replaced: [number, number][] = [];
  let stopping = false;
  let gaveUp: Error | null = null;
  const spawn = () => {
    const c = spawnChild({ name: "thing", argv }, logDir, () => {});
    spawned.push(c);
    return c;
  };
  keepAlive(spawn(), {
    name: "thing",
    policy,
    spawn,
    stopping: () => stopping,
    replaced: (next, prev) => void replaced.push([prev.pid, next.pid]),
    log: (l) => logs.push(l),
    giveUp: (e) => (gaveUp = e),
  });
  return {
    spawned,
    logs,
    replaced,
    gaveUp: () => gaveUp,
    async stop() {
      stopping = true;
      for (const c of spawned) {
        try {
          c.process.kill("SIGKILL");
        } catch { /* exited */ }
        await c.status;
      }
      await Deno.remove(logDir, { recursive: true });
    },
  };
}

Deno.test("keepAlive: a killed process is started again with the same argv; not once stopping", async () => {
  const h = await harness(["sleep", "30"], { delayMs: 50, maxRestarts: 5, windowMs: 60_000 });
  try {
    const first = h.spawned[0];
    first.process.kill("SIGKILL");
    await until(() => h.spawned.length === 2, "a restart");
    const second = h.spawned[1];
    assert.notEqual(second.pid, first.pid);
    assert.deepEqual(h.replaced, [[first.pid, second.pid]]);
    await until(() => h.logs.some((l) => l.startsWith(`thing is back (pid ${second.pid}`)), "the back line");
    assert.match(h.logs[0], new RegExp(`^thing \\(pid ${first.pid}\\) exited unexpectedly \\(signal SIGKILL\\); restarting in 0.05 s \\(5 restarts within 60 s at most\\)$`));
    // Between fork and exec /proc shows an empty cmdline, or the spawning (deno) process's own:
    // wait until the restarted process runs its own program.
    const self = Deno.readTextFileSync("/proc/self/cmdline");
    const raw = () => Deno.readTextFileSync(`/proc/${second.pid}/cmdline`);
    const cmdline = () => raw().split("\0").filter(Boolean);
    await until(() => raw() !== "" && raw() !== self, "the restarted process to exec");
    const argv = cmdline();
    assert.deepEqual([argv[0].replace(/^.*\//, ""), ...argv.slice(1)], ["sleep", "30"], "same argv");
  } finally {
    await h.stop();
  }
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(h.spawned.length, 2, "nothing restarted after stop");
  assert.equal(h.gaveUp(), null);
});

Deno.test("keepAlive: a crash loop ends in giveUp after maxRestarts restarts", async () => {
  const h = await harness(["sh", "-c", "echo boom; exit 3"], { delayMs: 10, maxRestarts: 3, windowMs: 60_000 });
  try {
    await until(() => h.gaveUp() !== null, "giving up");
    assert.equal(h.spawned.length, 4, "the first start and 3 restarts");
    const err = h.gaveUp()!;
    assert.match(err.message, /^thing exited 4 times within 60 s \(last: code 3\); giving up after 3 restarts\. Its last output:\nboom$/);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.spawned.length, 4, "no restart after giving up");
  } finally {
    await h.stop();
  }
});

Deno.test("keepAlive: an exit while the stack stops (e.g. Ctrl-C reaching the child too) is not restarted", async () => {
  const h = await harness(["sleep", "30"], { delayMs: 100, maxRestarts: 5, windowMs: 60_000 });
  try {
    h.spawned[0].process.kill("SIGTERM");
    await until(() => h.logs.length === 1, "the exit line");
    await h.stop(); // within the restart delay
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(h.spawned.length, 1, "no restart once stopping");
  } finally {
    await h.stop().catch(() => {});
  }
});
