// Entry point: the platform's env, the one SQL call over the instance's postgres.js client
// (created on first use, so a refused callback never opens a connection), and Deno.serve.
// The logic is in handler.ts.
import { getSql } from "../_shared/db.ts";
import { denoEnv } from "../_shared/env.ts";
import { createHandler, type DeliveryStatusResult, type DeliveryStatusStore } from "./handler.ts";

let store: DeliveryStatusStore | undefined;

function pgDeliveryStatusStore(): DeliveryStatusStore {
  const sql = getSql();
  return {
    async recordDeliveryStatus(u) {
      const [row] = await sql`
        select bookings.record_delivery_status(${u.messageSid}::text, ${u.status}::text, ${u.errorCode}::text, ${u.errorMessage}::text) as result`;
      return row.result as DeliveryStatusResult;
    },
  };
}

Deno.serve(createHandler({ env: denoEnv, store: () => (store ??= pgDeliveryStatusStore()) }));
