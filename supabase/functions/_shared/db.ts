// The one postgres.js client of a function instance, created on first use (a request rejected
// before it needs the database never opens a connection). SUPABASE_DB_URL is provided by the
// platform; prepare: false keeps it compatible with the transaction-mode pooler.

import postgres from "npm:postgres@^3.4.9";

let client: postgres.Sql | undefined;

export function getSql(): postgres.Sql {
  if (client === undefined) {
    const url = Deno.env.get("SUPABASE_DB_URL");
    if (!url) throw new Error("SUPABASE_DB_URL is not set");
    client = postgres(url, { prepare: false, max: 10 });
  }
  return client;
}
