// The local stand-in for pg_net's background worker (LOCAL STACK ONLY; hosted projects run the
// real pg_net). It drains net.http_request_queue and writes net._http_response like pg_net 0.20.4
// (supabase/pg_net src/worker.c, src/core.c), with the SQL surface provided by the SQL-only
// `pg_net` extension in supabase/local/extensions/.
//
// How it maps onto pg_net:
// - Identity: every connection uses application_name 'pg_net 0.20.4 worker'. net.check_worker_is_up(),
//   net.wait_until_running() and net.worker_restart() find the worker by that name.
// - Wake-ups: net.wake() is pg_notify('pg_net_wake'), delivered at COMMIT only, so (as with pg_net)
//   a request is sent only after its transaction commits and never after a rollback. The worker
//   LISTENs and drains at once on every notification, at startup and after every reconnect.
// - Safety poll: pg_net is not woken by a plain INSERT into net.http_request_queue (it waits for
//   the next wake). This worker also drains on a slow poll (default 1 s), so such rows are sent
//   within about a second instead of waiting indefinitely; a small, deliberate difference.
// - Claiming: pg_net's own `DELETE … ORDER BY id LIMIT n RETURNING`, with n = free slots (at most
//   pg_net.batch_size). Requests run concurrently, up to `concurrency` in flight, and each slot
//   is refilled as soon as its request finishes. pg_net instead waits for a whole batch (the
//   slowest request) before it commits and claims again; responses here appear sooner, never later.
// - Responses: one net._http_response row per request (id = request id), written as soon as the
//   request finishes; rows finishing within a few ms are grouped into one INSERT.
// - TTL: on every wake and poll, responses older than pg_net.ttl (default '6 hours') are deleted
//   oldest first, pg_net.batch_size (default 200) per statement, as pg_net does.
// - Settings are read with current_setting(name, true) on each pass; after ALTER SYSTEM / ALTER
//   DATABASE … SET pg_net.*, call net.worker_restart() as on Supabase.
// - Restart: net.worker_restart() terminates this worker's backends; the worker reconnects with
//   backoff (as it does whenever the database goes away) and drains again. A claimed request is
//   never dropped silently: its response insert is retried until it succeeds or the worker
//   closes, and a response that cannot be written is logged with its request id.
import postgres from "npm:postgres@^3.4.9";
import { type Outcome, type QueuedRequest, type ResponseRow, send } from "./http.ts";

export const APPLICATION_NAME = "pg_net 0.20.4 worker";
export const WAKE_CHANNEL = "pg_net_wake";
const DEFAULT_BATCH_SIZE = 200;
const DEFAULT_TTL = "6 hours";

export interface NetWorkerOptions {
  dbUrl: string;
  /** Max requests in flight; default pg_net.batch_size (200). */
  concurrency?: number;
  log?: (line: string) => void;
  /** Safety poll interval in ms (drains even without a wake). Default 1000. */
  pollMs?: number;
}

export interface NetWorker {
  /** Stops claiming, waits for in-flight requests and their response rows, then disconnects. */
  close(): Promise<void>;
  /** Resolves when the queue was last seen empty and nothing is in flight or unwritten. */
  idle(): Promise<void>;
}

type Sql = ReturnType<typeof postgres>;

interface Settings {
  batchSize: number;
  ttl: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

export async function startNetWorker(opts: NetWorkerOptions): Promise<NetWorker> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const pollMs = opts.pollMs ?? 1000;
  const connection = { application_name: APPLICATION_NAME };
  const sql: Sql = postgres(opts.dbUrl, {
    max: 4,
    connection,
    onnotice: () => {},
    connect_timeout: 10,
  });

  let closing = false;
  let closeNow: () => void = () => {};
  const closingSignal = new Promise<void>((r) => (closeNow = r));
  let settings: Settings = { batchSize: DEFAULT_BATCH_SIZE, ttl: DEFAULT_TTL };
  const concurrency = opts.concurrency ?? 0; // 0 = follow pg_net.batch_size
  const inflight = new Set<Promise<void>>();
  let pumping: Promise<void> | null = null;
  let wakeAgain = false;
  let queueMaybeNonEmpty = true;
  let lastPumpFailed = false;
  let missingExtensionLogged = false;
  let backoffMs = 100;

  // ---- response writing (grouped) ------------------------------------------------------------
  let pendingRows: ResponseRow[] = [];
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> | null = null;

  async function writeRows(rows: ResponseRow[]): Promise<void> {
    await sql`
      insert into net._http_response (id, status_code, content, headers, content_type, timed_out, error_msg)
      select id, status_code, content, headers, content_type, timed_out, error_msg
      from pg_catalog.jsonb_to_recordset(${sql.json(rows as unknown as postgres.JSONValue)})
        as r(id bigint, status_code int, content text, headers jsonb, content_type text, timed_out bool, error_msg text)
    `;
  }

  function scheduleFlush(): void {
    if (flushTimer !== undefined || flushing) return;
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      void flush();
    }, pendingRows.length >= 100 ? 0 : 5);
  }

  /** Connection-level failures worth retrying; anything else is a problem with the rows. */
  function transient(err: unknown): boolean {
    const code = String((err as { code?: string }).code ?? "");
    return /^(08|57P|53|40)/.test(code) || code.startsWith("CONNECT") || code === "ECONNREFUSED" ||
      code === "ECONNRESET" || code === "EPIPE" || code === "ETIMEDOUT" || code === "";
  }

  /** Writes rows that the database refused one by one; a row that still fails is replaced by an
   * error row for the same request id, so the caller always finds an answer. */
  async function writeOneByOne(rows: ResponseRow[]): Promise<void> {
    for (const row of rows) {
      try {
        await writeRows([row]);
      } catch (err) {
        if (transient(err)) throw err;
        log(`net-worker could not store the response of request id=${row.id}: ${describe(err)}; storing an error row instead`);
        await writeRows([{
          id: row.id, status_code: null, content: null, headers: null, content_type: null, timed_out: false,
          error_msg: `net-worker could not store the response: ${describe(err)}`,
        }]);
      }
    }
  }

  function flush(): Promise<void> {
    if (flushing) return flushing;
    flushing = (async () => {
      let delay = 100;
      while (pendingRows.length > 0) {
        const batch = pendingRows.slice(0, 500);
        try {
          try {
            await writeRows(batch);
          } catch (err) {
            if (transient(err)) throw err;
            await writeOneByOne(batch);
          }
          pendingRows = pendingRows.slice(batch.length);
          delay = 100;
        } catch (err) {
          const ids = batch.map((r) => r.id).join(",");
          if (closing && delay >= 3200) {
            log(`net-worker LOST the responses of request ids ${ids}: ${describe(err)} (gave up while closing)`);
            pendingRows = pendingRows.slice(batch.length);
            continue;
          }
          log(`net-worker could not write the responses of request ids ${ids}: ${describe(err)}; retrying in ${delay} ms`);
          await sleep(delay);
          delay = Math.min(delay * 2, 5000);
        }
      }
    })().finally(() => {
      flushing = null;
      if (pendingRows.length > 0) scheduleFlush();
    });
    return flushing;
  }

  function record(o: Outcome): void {
    const r = o.row;
    const result = r.error_msg !== null
      ? (r.timed_out ? `timeout` : `error "${r.error_msg}"`) + (o.detail ? ` (${o.detail})` : "")
      : String(r.status_code);
    log(`net-worker ${o.method} ${o.safeUrl} ${result} ${Math.round(o.ms)}ms id=${r.id}`);
    pendingRows.push(r);
    scheduleFlush();
  }

  // ---- settings, TTL, claiming ---------------------------------------------------------------
  async function readSettings(): Promise<void> {
    const [row] = await sql<{ batch_size: string | null; ttl: string | null }[]>`
      select pg_catalog.current_setting('pg_net.batch_size', true) as batch_size,
             pg_catalog.current_setting('pg_net.ttl', true) as ttl`;
    const n = Number.parseInt(row.batch_size ?? "", 10);
    settings = {
      batchSize: Number.isFinite(n) && n >= 0 ? Math.min(n, 32767) : DEFAULT_BATCH_SIZE,
      ttl: row.ttl && row.ttl.trim() !== "" ? row.ttl : DEFAULT_TTL,
    };
  }

  async function expireResponses(): Promise<void> {
    if (settings.batchSize === 0) return;
    for (let pass = 0; pass < 50; pass++) {
      const res = await sql`
        with rows as (
          select ctid from net._http_response
          where created < pg_catalog.now() - ${settings.ttl}::interval
          order by created
          limit ${settings.batchSize}
        )
        delete from net._http_response r using rows where r.ctid = rows.ctid`;
      if (res.count < settings.batchSize) return;
    }
  }

  async function claim(n: number): Promise<QueuedRequest[]> {
    return await sql<QueuedRequest[]>`
      with rows as (
        select id from net.http_request_queue order by id limit ${n}
      )
      delete from net.http_request_queue q using rows where q.id = rows.id
      returning q.id::text as id, q.method::text as method, q.url, q.timeout_milliseconds,
        array(select key || ': ' || value from pg_catalog.jsonb_each_text(q.headers)) as headers,
        q.body`;
  }

  function start(req: QueuedRequest): void {
    const p: Promise<void> = send(req).then(record, (err) => {
      // send() never throws; this is a bug guard so the request is still answered
      record({
        row: { id: req.id, status_code: null, content: null, headers: null, content_type: null, timed_out: false, error_msg: String(err) },
        method: req.method, safeUrl: req.url.split(/[?#]/)[0], ms: 0,
      });
    }).finally(() => {
      inflight.delete(p);
      if (queueMaybeNonEmpty && !closing) void pump();
    });
    inflight.add(p);
  }

  const slots = () => (concurrency > 0 ? concurrency : Math.max(settings.batchSize, 1));

  // Settings and TTL run at most once a second (and right after a (re)connect), not on every
  // refill: under load a refill happens each time a request finishes.
  let lastHousekeeping = 0;

  /** One drain: settings + TTL pass, then claim requests for every free slot until empty. */
  async function drainOnce(): Promise<void> {
    if (Date.now() - lastHousekeeping >= 1000) {
      await readSettings();
      await expireResponses();
      lastHousekeeping = Date.now();
    }
    while (!closing) {
      const free = Math.min(slots() - inflight.size, Math.max(settings.batchSize, 0));
      if (free <= 0) {
        queueMaybeNonEmpty = true; // a finishing request will pump again
        return;
      }
      const rows = await claim(free);
      for (const row of rows) start(row);
      if (rows.length < free) {
        queueMaybeNonEmpty = false;
        return;
      }
    }
  }

  function pump(): Promise<void> {
    if (closing) return Promise.resolve();
    if (pumping) {
      wakeAgain = true;
      return pumping;
    }
    pumping = (async () => {
      do {
        wakeAgain = false;
        try {
          await drainOnce();
          lastPumpFailed = false;
          missingExtensionLogged = false;
          backoffMs = 100;
        } catch (err) {
          lastPumpFailed = true;
          const code = (err as { code?: string }).code;
          if (code === "42P01" || code === "3F000") {
            // net schema / tables missing: pg_net not created yet in this database
            if (!missingExtensionLogged) log(`net-worker waiting: pg_net is not installed in this database (${describe(err)})`);
            missingExtensionLogged = true;
          } else {
            log(`net-worker drain failed: ${describe(err)}; retrying in ${backoffMs} ms`);
            await sleep(backoffMs);
            backoffMs = Math.min(backoffMs * 2, 2000);
            wakeAgain = !closing;
          }
        }
      } while (wakeAgain && !closing);
    })().finally(() => {
      pumping = null;
    });
    return pumping;
  }

  // ---- LISTEN connection, reconnecting with backoff ------------------------------------------
  let listenSql: Sql | null = null;
  let listenedOnce: () => void = () => {};
  const listened = new Promise<void>((r) => (listenedOnce = r));
  let lastListenError = "no attempt yet";
  const listening = (async () => {
    let delay = 100;
    let first = true;
    while (!closing) {
      let onClosed: () => void = () => {};
      const closed = new Promise<void>((r) => (onClosed = r));
      // onnotify is a postgres.js connection option its type declarations leave out (its own
      // sql.listen() is built on it); it is used directly here because sql.listen() gives up
      // re-listening for good if the server is down when the connection drops.
      const listenOptions = {
        max: 1,
        connection,
        onnotice: () => {},
        max_lifetime: 0, // 0 = never recycle this connection
        connect_timeout: 10,
        onnotify: (channel: string) => {
          if (channel === WAKE_CHANNEL) void pump();
        },
        onclose: () => onClosed(),
      };
      const l: Sql = postgres(opts.dbUrl, listenOptions);
      listenSql = l;
      try {
        await l.unsafe(`listen ${WAKE_CHANNEL}`);
        listenedOnce();
        lastHousekeeping = 0; // re-read pg_net.* settings (net.worker_restart() reconnects us)
        if (!first) log("net-worker reconnected");
        first = false;
        delay = 100;
        void pump(); // anything committed while we were away
        await Promise.race([closed, closingSignal]);
        if (!closing) log("net-worker lost its database connection; reconnecting");
      } catch (err) {
        lastListenError = describe(err);
        if (!closing) log(`net-worker cannot listen: ${describe(err)}; retrying in ${delay} ms`);
        await Promise.race([sleep(delay), closingSignal]);
        delay = Math.min(delay * 2, 2000);
      } finally {
        await l.end({ timeout: 0 }).catch(() => {});
      }
    }
  })();

  // ---- safety poll ---------------------------------------------------------------------------
  const poll = setInterval(() => void pump(), pollMs);

  // Ready once LISTEN has succeeded (fail after 30 s, e.g. on a wrong URL or a stopped server).
  {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ok = await Promise.race([
      listened.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 30_000))),
    ]);
    clearTimeout(timer);
    if (!ok) {
      closing = true;
      closeNow();
      clearInterval(poll);
      await listening.catch(() => {});
      await sql.end({ timeout: 0 }).catch(() => {});
      throw new Error(`net-worker cannot connect to the database: ${lastListenError}`);
    }
    await pump();
  }

  async function idle(): Promise<void> {
    for (;;) {
      if (pumping) await pumping;
      if (inflight.size > 0) await Promise.all([...inflight]);
      if (flushTimer !== undefined || flushing || pendingRows.length > 0) {
        await flush();
        continue;
      }
      if (!pumping && inflight.size === 0 && !queueMaybeNonEmpty && !lastPumpFailed) return;
      if (!pumping) void pump();
      await sleep(10);
    }
  }

  async function close(): Promise<void> {
    if (closing) return;
    closing = true;
    clearInterval(poll);
    if (pumping) await pumping.catch(() => {});
    await Promise.all([...inflight]);
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    flushTimer = undefined;
    await flush();
    closeNow();
    await listenSql?.end({ timeout: 0 }).catch(() => {});
    await listening.catch(() => {});
    await sql.end({ timeout: 5 });
  }

  return { close, idle };
}
