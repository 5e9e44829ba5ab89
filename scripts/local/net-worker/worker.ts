// The local stand-in for pg_net 0.20.4's background worker (LOCAL STACK ONLY; hosted projects run
// the real pg_net). It follows supabase/pg_net src/worker.c pg_net_worker step by step, with the
// SQL surface of the SQL-only `pg_net` extension in supabase/local/extensions/.
//
// Semantics kept from the real worker:
// - Passes (pass.ts): one transaction per pass. AccessShareLock is taken conditionally on both
//   tables (the pass is skipped while they are locked, e.g. while DROP EXTENSION waits, or
//   missing); up to pg_net.batch_size expired responses are deleted, up to batch_size requests
//   are claimed with DELETE … RETURNING ORDER BY id, all of them are sent at once, the pass waits
//   for every one to finish or time out, inserts all responses (created = the pass's transaction
//   start) and commits. Nothing else is sent during a pass.
// - Between passes the worker waits on its latch for up to 1 s (WaitLatch, then ResetLatch) and
//   runs another pass while the last one consumed requests or deleted expired responses; then it
//   waits for a wake without timeout.
// - Wakes: net.wake() is pg_notify('pg_net_wake'), delivered at COMMIT only (never after a
//   rollback; one per transaction), like pg_net's wake_at_commit. Each delivery does what
//   wake_at_commit does: CAS should_wake 0→1 and SetLatch only if that succeeded. The outer loop
//   CASes should_wake 1→0 before a run of passes; the passes themselves leave it alone. So the
//   first commit during a run of passes cuts the next 1 s wait short, and later ones do nothing:
//   under sustained load a pass waits the full second. A plain INSERT into
//   net.http_request_queue wakes nothing: the row waits for the next wake, as with pg_net.
// - Settings (settings.ts): pg_net.batch_size and pg_net.ttl are read by the worker's session at
//   the start of every pass (SIGHUP semantics: after pg_reload_conf()); pg_net.database_name and
//   pg_net.username when the worker starts.
// - Restart: net.worker_restart() reloads the config and ends the worker's LISTEN connection,
//   which the worker takes as got_restart + SetLatch: it finishes the current pass, exits, and
//   starts again 1 s later (bgw_restart_time = 1) with should_wake = 1, so it runs a pass at
//   once. Closing (SIGTERM) is the same without the restart. A pass that fails (lost connection,
//   an ERROR pg_net would raise too, such as a negative timeout_milliseconds) ends the worker
//   the same way; its transaction rolls back, so the claimed requests are sent again after the
//   restart, as after a crash of the real worker. A worker killed mid-pass is restarted by the
//   stack's supervisor 1 s later and does the same. Nothing is kept across passes.
//
// Deliberate differences, because this is a client process and not a background worker:
// - The worker is found by application_name 'pg_net 0.20.4 worker' (net.check_worker_is_up(),
//   net.wait_until_running(), net.worker_restart()) rather than by backend_type, and
//   net.worker_restart() only restarts the worker of the current database.
// - pg_reload_conf() alone does not set the latch (the real SIGHUP handler does, which only
//   cuts a 1 s wait short); new values are still picked up at the next pass.
// - The HTTP client (http-client.ts) is a small HTTP/1.1 client that sends the bytes libcurl
//   sends, on a new connection per request (libcurl reuses connections and may use HTTP/2 over
//   TLS).
// - ALTER DATABASE/ROLE … SET pg_net.* is accepted by the placeholders (the real SIGHUP settings
//   refuse it) and would be seen by the worker's session after a restart.
import postgres from "npm:postgres@^3.4.9";
import { Latch } from "./latch.ts";
import { type PassHooks, type PassOutcome, runPass } from "./pass.ts";
import { DEFAULT_PASS_SETTINGS, type PassSettings, readPassSettings, readStartupSettings } from "./settings.ts";

export const APPLICATION_NAME = "pg_net 0.20.4 worker";
export const WAKE_CHANNEL = "pg_net_wake";
/** The only query of the LISTEN connection; net.worker_restart() finds the worker by it. */
export const LISTEN_QUERY = `listen ${WAKE_CHANNEL}`;
const RESTART_DELAY_MS = 1000; // bgw_restart_time
const BETWEEN_PASSES_MS = 1000; // WORKER_WAIT_ONE_SECOND

export interface NetWorkerOptions {
  /** The server, and the database and user used to read pg_net.database_name/username. */
  dbUrl: string;
  /** Serve this database instead of pg_net.database_name (tests run a worker per database). */
  database?: string;
  log?: (line: string) => void;
}

export interface NetWorker {
  /** Like SIGTERM: finishes the current pass, then disconnects (no restart). */
  close(): Promise<void>;
  /** Resolves when the worker waits for a wake with no wake pending. */
  idle(): Promise<void>;
}

type Sql = ReturnType<typeof postgres>;
type Phase = "starting" | "waiting" | "passes" | "exiting";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A URL for the log: no query string or fragment, no credentials (they can carry keys). */
function logUrl(url: string): string {
  return url.split(/[?#]/)[0].replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

export async function startNetWorker(opts: NetWorkerOptions): Promise<NetWorker> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const connection = { application_name: APPLICATION_NAME };
  const latch = new Latch();
  // the worker's shared state (WorkerState): should_wake starts at 1 and is set to 1 on exit
  let shouldWake = 1;
  let gotRestart = false;
  let closing = false;
  let phase: Phase = "starting";
  let settings: PassSettings = DEFAULT_PASS_SETTINGS;
  let lastSkip: string | null = null;
  let lastInvalid: string | null = null;

  /** wake_at_commit */
  const wakeAtCommit = () => {
    if (shouldWake === 0) {
      shouldWake = 1;
      latch.set();
    }
  };
  /** worker_restart() / handle_sigterm */
  const requestRestart = () => {
    gotRestart = true;
    latch.set();
  };

  const hooks: PassHooks = {
    invalidSetting(message) {
      if (message !== null && message !== lastInvalid) log(`net-worker: ${message}`);
      lastInvalid = message;
    },
    answered(req, row, ms, detail) {
      const result = row.error_msg !== null ? (row.timed_out ? "timeout" : `error "${row.error_msg}"`) + (detail ? ` (${detail})` : "") : String(row.status_code);
      log(`net-worker ${req.method.toUpperCase()} ${logUrl(req.url)} ${result} ${Math.round(ms)}ms id=${req.id}`);
    },
  };

  function workerUrl(databaseName: string, username: string): string {
    const url = new URL(opts.dbUrl);
    url.pathname = `/${encodeURIComponent(opts.database ?? databaseName)}`;
    if (username !== "") {
      url.username = encodeURIComponent(username);
      url.password = "";
    }
    return url.toString();
  }

  /** One life of the worker process: connect, loop until got_restart, disconnect. */
  async function life(ready: () => void): Promise<void> {
    if (closing) return;
    latch.reset(); // a new process has a new latch
    gotRestart = false;
    const boot = postgres(opts.dbUrl, {
      max: 1, onnotice: () => {}, connect_timeout: 10, fetch_types: false,
      connection: { application_name: `${APPLICATION_NAME} (startup)` },
    });
    const startup = await readStartupSettings(boot).finally(() => boot.end({ timeout: 1 }).catch(() => {}));
    const url = workerUrl(startup.databaseName, startup.username);
    let ending = false;
    const sql: Sql = postgres(url, { max: 1, connection, onnotice: () => {}, connect_timeout: 10 });
    // onnotify/onclose are postgres.js connection options its type declarations leave out
    // (its own sql.listen() is built on them and gives up for good if the server is down).
    const listenOptions = {
      max: 1, connection, onnotice: () => {}, connect_timeout: 10, fetch_types: false,
      max_lifetime: 0, // never recycle: the LISTEN must stay
      onnotify: (channel: string) => {
        if (channel === WAKE_CHANNEL) wakeAtCommit();
      },
      onclose: () => {
        if (!ending) requestRestart();
      },
    };
    const listen: Sql = postgres(url, listenOptions);
    let shouldRestart = false;
    const processInterrupts = () => {
      if (gotRestart) {
        gotRestart = false;
        shouldRestart = true;
      }
    };
    try {
      await listen.unsafe(LISTEN_QUERY);
      settings = (await readPassSettings(sql, settings)).settings;
      log(`pg_net worker started with a config of: pg_net.ttl=${settings.ttl}, pg_net.batch_size=${settings.batchSize}, ` +
        `pg_net.username=${startup.username}, pg_net.database_name=${opts.database ?? startup.databaseName}`);
      ready();
      do {
        if (shouldWake !== 1) { // CAS 1 → 0 failed: wait for a wake
          phase = "waiting";
          await latch.wait(null);
          latch.reset();
          processInterrupts();
          continue;
        }
        shouldWake = 0;
        phase = "passes";
        let outcome: PassOutcome;
        do {
          const r = await runPass(sql, settings, hooks);
          settings = r.settings;
          outcome = r.outcome;
          if ("skipped" in outcome) {
            if (outcome.skipped !== lastSkip) log(`net-worker: pass skipped: ${outcome.skipped}`);
            lastSkip = outcome.skipped;
            break;
          }
          lastSkip = null;
          if (outcome.consumed > 0 || outcome.expired > 0) {
            log(`net-worker pass: ${outcome.consumed} requests, ${outcome.expired} expired responses deleted`);
          }
          await latch.wait(BETWEEN_PASSES_MS);
          latch.reset();
          processInterrupts();
        } while (!shouldRestart && (outcome.consumed > 0 || outcome.expired > 0));
      } while (!shouldRestart);
    } finally {
      phase = "exiting";
      shouldWake = 1; // net_on_exit: the next worker starts with a pass
      ending = true;
      await listen.end({ timeout: 1 }).catch(() => {});
      await sql.end({ timeout: 5 }).catch(() => {});
    }
  }

  let closeNow: () => void = () => {};
  const closed = new Promise<void>((r) => (closeNow = r));
  let readyOnce: () => void = () => {};
  const firstReady = new Promise<void>((r) => (readyOnce = r));
  let lastError = "no attempt yet";
  let lastLogged = "";

  const running = (async () => {
    while (!closing) {
      try {
        await life(() => {
          lastLogged = "";
          readyOnce();
        });
        if (!closing) log(`net-worker exiting for a restart; starting again in ${RESTART_DELAY_MS / 1000} s`);
      } catch (e) {
        lastError = describe(e);
        // like the postmaster restarting a failing worker every second; said once per error
        if (!closing && lastError !== lastLogged) log(`net-worker failed: ${lastError}; starting again in ${RESTART_DELAY_MS / 1000} s`);
        lastLogged = lastError;
      }
      if (closing) break;
      phase = "starting";
      await Promise.race([sleep(RESTART_DELAY_MS), closed]);
    }
  })();

  // Ready once the first life is listening (fail after 30 s, e.g. on a wrong URL).
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([
    firstReady.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 30_000))),
  ]);
  clearTimeout(timer);

  async function close(): Promise<void> {
    closing = true;
    closeNow();
    requestRestart(); // handle_sigterm: got_restart + SetLatch
    await running;
  }

  if (!ok) {
    await close();
    throw new Error(`net-worker cannot connect to the database: ${lastError}`);
  }

  async function idle(): Promise<void> {
    while (!(phase === "waiting" && shouldWake === 0 && !latch.pending)) {
      if (closing) return;
      await sleep(10);
    }
  }

  return { close, idle };
}
