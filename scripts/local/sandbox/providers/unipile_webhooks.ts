// The fake Unipile's webhook registry (provider-contracts §6; shapes from unipile-node-sdk
// 1.9.3's webhooks/* schemas):
//   POST   /webhooks         JSON {source, request_url, name?, headers?: [{key, value}], events?,
//                            account_ids?, enabled?, format?} → 201 {object: "WebhookCreated", webhook_id}
//   GET    /webhooks         → {object: "WebhookList", items: [Webhook…], cursor: null}
//   DELETE /webhooks/{id}    → {object: "WebhookDeleted"}
// The SDK's create schema lacks source "users" (new_relation lives there, per Unipile's
// "detecting accepted invitations" page), so the fake accepts every source Unipile documents.
// Only "users" (new_relation) and "messaging" (message_received) webhooks ever fire.

import { z } from "npm:zod@4";
import { jsonResponse } from "../http.ts";
import type { SandboxRequest } from "../types.ts";
import { err } from "./unipile_errors.ts";
import { jsonBody } from "./unipile_params.ts";
import { addWebhook, type UnipileState, type Webhook, WebhookInput, zodMessage } from "./unipile_state.ts";
import type { Answer } from "./unipile_users.ts";

export function createWebhook(state: UnipileState, req: SandboxRequest): Answer {
  const body = jsonBody(req);
  if (!body.ok) return body.error;
  // Lenient like an API (unknown fields such as `data` are ignored), unlike the fixture schema.
  const parsed = z.object(WebhookInput.shape).safeParse(body.value);
  if (!parsed.success) return err.invalidParameters(zodMessage(parsed.error));
  let url: URL;
  try {
    url = new URL(parsed.data.request_url);
  } catch {
    return err.invalidParameters("request_url must be an absolute URL.");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return err.invalidParameters("request_url must be an http(s) URL.");
  }
  const hook = addWebhook(state, parsed.data, "api");
  return jsonResponse(201, { object: "WebhookCreated", webhook_id: hook.id });
}

function webhookJson(state: UnipileState, w: Webhook) {
  const accounts = w.account_ids ?? [];
  return {
    object: "Webhook",
    id: w.id,
    type: "AUTO",
    source: w.source,
    account_ids: accounts.map((id) => ({
      id,
      type: "LINKEDIN",
      ...(state.accounts.has(id) && { name: state.accounts.get(id)!.name }),
    })),
    enabled: w.enabled,
    ...(w.name !== null && { name: w.name }),
    request_url: w.request_url,
    format: w.format,
    headers: w.headers, // the API shows them to the key's owner, as Unipile's dashboard does
    data: [],
    ...(w.events !== null && { events: w.events }),
  };
}

export function listWebhooks(state: UnipileState): Answer {
  return jsonResponse(200, {
    object: "WebhookList",
    items: [...state.webhooks.values()].map((w) => webhookJson(state, w)),
    cursor: null,
  });
}

export function deleteWebhook(state: UnipileState, id: string): Answer {
  if (!state.webhooks.delete(id)) return err.notFound(`Webhook ${id}`);
  return jsonResponse(200, { object: "WebhookDeleted" });
}
