// The attack table: one entry per Edge Function (supabase/functions/<name>, _shared aside). The
// suite fails while a function has no entry, so a function added later is attacked from the day
// it lands: give it a kind (which front door it has) and a sample request a legitimate caller
// would send; the suite then tries that request with every wrong credential and bad body.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export type Kind =
  | "job" //      _shared/job_request.ts: batch token or secret key, JSON batch, 1 MiB
  | "run-job" //  secret key or CRON_SECRET, {"job"}, 16 KiB
  | "twilio" //   X-Twilio-Signature over the configured URL, form body, 64 KiB
  | "unipile"; // X-Webhook-Secret, JSON event, 64 KiB

export interface FunctionEntry {
  kind: Kind;
  /** Status of a refused credential: 401, or 403 for Twilio's signature (the code's choice). */
  refused: 401 | 403;
  /** Body limit in bytes (413 above it). */
  limit: number;
  /** For job functions: the payload of one task, valid for the function's schema. */
  payload?: Record<string, unknown>;
  /** For job functions: a payload field and a value of the wrong type (400 naming it). */
  badField?: [string, unknown];
}

const MiB = 1024 * 1024;
const job = (payload: Record<string, unknown>, badField: [string, unknown]): FunctionEntry => ({
  kind: "job", refused: 401, limit: MiB, payload, badField,
});

export const ATTACK_TABLE: Record<string, FunctionEntry> = {
  "refresh-token": job({ account_id: 1 }, ["account_id", "1; drop table x"]),
  "refresh-reels": job({ reel_id: 1, account_id: 1, media_id: "17900000000001001", graph_version: "v23.0" }, ["reel_id", -1]),
  "send-reminder": job({ notification_id: 1, channel: "email" }, ["channel", "sms"]),
  "linkedin-send": job({ kind: "invite", prospect_id: 1 }, ["kind", "'; drop table x; --"]),
  "check-relations": job({ account_id: 1 }, ["account_id", { $gt: 0 }]),
  "send-notification": job({ notification_id: 1 }, ["notification_id", 1.5]),
  "run-job": { kind: "run-job", refused: 401, limit: 16 * 1024 },
  "twilio-status": { kind: "twilio", refused: 403, limit: 64 * 1024 },
  "unipile-webhook": { kind: "unipile", refused: 401, limit: 64 * 1024 },
};

/** The functions the project deploys: every folder of supabase/functions but _shared. */
export function deployedFunctions(root = "supabase/functions"): string[] {
  return readdirSync(root)
    .filter((d) => !d.startsWith("_") && !d.startsWith(".") && statSync(join(root, d)).isDirectory())
    .sort();
}
