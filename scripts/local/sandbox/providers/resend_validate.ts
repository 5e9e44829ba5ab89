// Body validation of the fake's POST /emails (provider-contracts §5): `from` as "Name <a@dom>" or
// "a@dom" on a verified domain, `to` a string or up to 50 addresses, `subject`, and `html` or
// `text`. Missing fields are 422 missing_required_field, malformed ones 422 validation_error,
// an unverified sender domain 403 validation_error (statuses per the contract; message
// wording follows Resend's where known, otherwise the fake's own).

export interface ResendErrorSpec {
  statusCode: number;
  name: string;
  message: string;
}

export interface ValidEmail {
  from: string;
  to: string[];
  cc: string[] | null;
  bcc: string[] | null;
  reply_to: string[] | null;
  subject: string;
  html: string | null;
  text: string | null;
  tags: { name: string; value: string }[];
  scheduled_at: string | null;
}

const MAX_RECIPIENTS = 50;
const ADDRESS = /^[^\s@<>",;]+@([^\s@<>",;]+\.[^\s@<>",;]+)$/;
const NAMED = /^([^<>]*)<([^<>]+)>$/;
const TAG = /^[A-Za-z0-9_-]{1,256}$/;

const missing = (field: string): ResendErrorSpec => ({
  statusCode: 422,
  name: "missing_required_field",
  message: `Missing \`${field}\` field.`,
});

const invalidAddress = (field: string): ResendErrorSpec => ({
  statusCode: 422,
  name: "validation_error",
  message:
    `Invalid \`${field}\` field. The email address needs to follow the \`email@example.com\` or \`Name <email@example.com>\` format.`,
});

/** The domain of "a@dom" or "Name <a@dom>", or null if it is neither. */
export function addressDomain(value: string): string | null {
  const trimmed = value.trim();
  const named = NAMED.exec(trimmed);
  const address = named ? named[2].trim() : trimmed;
  const m = ADDRESS.exec(address);
  return m ? m[1].toLowerCase() : null;
}

/** A string or an array of strings, each an address; null when absent. */
function addresses(body: Record<string, unknown>, field: string, max?: number): string[] | null | ResendErrorSpec {
  const v = body[field];
  if (v === undefined || v === null) return null;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== "string" || addressDomain(x) === null)) {
    return invalidAddress(field);
  }
  if (max !== undefined && list.length > max) {
    return {
      statusCode: 422,
      name: "validation_error",
      message: `Invalid \`${field}\` field. You can only send to up to ${max} recipients.`,
    };
  }
  return list as string[];
}

const isError = (v: unknown): v is ResendErrorSpec =>
  v !== null && typeof v === "object" && !Array.isArray(v) && "statusCode" in v;

export function validateEmail(body: unknown, verifiedDomains: Set<string>): ValidEmail | ResendErrorSpec {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return { statusCode: 400, name: "validation_error", message: "The request body must be a JSON object." };
  }
  const b = body as Record<string, unknown>;

  if (b.from === undefined || b.from === null || b.from === "") return missing("from");
  if (typeof b.from !== "string") return invalidAddress("from");
  const domain = addressDomain(b.from);
  if (domain === null) return invalidAddress("from");

  if (b.to === undefined || b.to === null || (Array.isArray(b.to) && b.to.length === 0) || b.to === "") {
    return missing("to");
  }
  const to = addresses(b, "to", MAX_RECIPIENTS);
  if (isError(to)) return to;
  const cc = addresses(b, "cc");
  if (isError(cc)) return cc;
  const bcc = addresses(b, "bcc");
  if (isError(bcc)) return bcc;
  const replyTo = addresses(b, "reply_to");
  if (isError(replyTo)) return replyTo;

  if (b.subject === undefined || b.subject === null) return missing("subject");
  if (typeof b.subject !== "string") {
    return { statusCode: 422, name: "validation_error", message: "Invalid `subject` field. It must be a string." };
  }
  const html = typeof b.html === "string" ? b.html : null;
  const text = typeof b.text === "string" ? b.text : null;
  // Resend also renders stored templates (`template`); the fake accepts one without checking it.
  if (html === null && text === null && b.template === undefined) return missing("html` or `text");

  const tags: { name: string; value: string }[] = [];
  if (b.tags !== undefined && b.tags !== null) {
    const ok = Array.isArray(b.tags) && b.tags.every((t) =>
      t !== null && typeof t === "object" && typeof t.name === "string" && TAG.test(t.name) &&
      typeof t.value === "string" && TAG.test(t.value)
    );
    if (!ok) {
      return {
        statusCode: 422,
        name: "validation_error",
        message:
          "Invalid `tags` field. Tag names and values may only contain ASCII letters, numbers, underscores, or dashes (at most 256 characters).",
      };
    }
    for (const t of b.tags as { name: string; value: string }[]) tags.push({ name: t.name, value: t.value });
  }

  // Last, as Resend reports it only for an otherwise valid request (UNVERIFIED ordering).
  if (!verifiedDomains.has(domain)) {
    return {
      statusCode: 403,
      name: "validation_error",
      message: `The ${domain} domain is not verified. Please, add and verify your domain on https://resend.com/domains`,
    };
  }
  return {
    from: b.from,
    to: to!,
    cc,
    bcc,
    reply_to: replyTo,
    subject: b.subject,
    html,
    text,
    tags,
    scheduled_at: typeof b.scheduled_at === "string" ? b.scheduled_at : null,
  };
}
