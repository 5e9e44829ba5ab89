// The harness's own negative control: one WhatsApp message sent a second time behind the engine's
// back (straight to the fake Twilio) must show up as one duplicated effect. A counter that cannot
// see a duplicate would make every "0" in the table meaningless.
import { readFileSync } from "node:fs";
import type { Ctx, Workload } from "./types.ts";

export async function duplicateIsCounted(ctx: Ctx, workload: Workload): Promise<string | null> {
  const before = (await workload.effects(ctx)).find((e) => e.provider === "twilio");
  const [client] = await ctx.sql()`
    select c.phone from public.notifications n join public.clients c on c.id = n.client_id
     where c.name like 'w2-bench %' and n.channel = 'whatsapp' and n.provider_message_id is not null limit 1`;
  if (!before || !client) return "self-check: no WhatsApp reminder was sent, nothing to duplicate";
  const twilio = JSON.parse(readFileSync("scripts/local/sandbox/fixtures.json", "utf8")).twilio;
  const res = await fetch(`${ctx.info.providers.twilio}/2010-04-01/Accounts/${twilio.account_sid}/Messages.json`, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`${twilio.account_sid}:${twilio.auth_token}`)}` },
    body: new URLSearchParams({ To: `whatsapp:${client.phone}`, From: `whatsapp:${twilio.senders[0]}`, Body: "chaos self-check" }),
  });
  await res.body?.cancel();
  if (res.status !== 201) return `self-check: the fake Twilio answered ${res.status} to the extra message`;
  const after = (await workload.effects(ctx)).find((e) => e.provider === "twilio")!;
  return after.duplicates === before.duplicates + 1
    ? null
    : `self-check: an extra message was counted as ${after.duplicates - before.duplicates} duplicates, not 1`;
}
