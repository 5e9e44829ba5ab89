/**
 * A dotenv parser compatible with the common `.env` format (the one `supabase functions serve
 * --env-file` / `supabase secrets set --env-file` read):
 *
 *   # comment
 *   KEY=value                 # inline comment after an unquoted value
 *   export KEY=value          # optional `export ` prefix
 *   KEY="double \n quoted"    # \n, \r, \t, \", \\ escapes; may span lines
 *   KEY='single quoted'       # literal, may span lines
 *   KEY=`backtick quoted`     # literal
 *   KEY=                      # empty string
 *
 * Later definitions override earlier ones. Lines that are not assignments are ignored (and
 * reported through `onWarning`). No variable expansion is performed.
 */

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function parseDotenv(
  src: string,
  onWarning?: (message: string) => void,
): Record<string, string> {
  const out: Record<string, string> = {};
  const s = src.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  let i = 0;
  let line = 1;
  const n = s.length;

  const skipToEol = () => {
    while (i < n && s[i] !== "\n") i++;
  };

  while (i < n) {
    // leading whitespace
    while (i < n && (s[i] === " " || s[i] === "\t")) i++;
    if (i >= n) break;
    if (s[i] === "\n") {
      i++;
      line++;
      continue;
    }
    if (s[i] === "#") {
      skipToEol();
      continue;
    }
    const lineStart = i;
    const startLine = line;
    if (s.startsWith("export ", i) || s.startsWith("export\t", i)) {
      i += 7;
      while (i < n && (s[i] === " " || s[i] === "\t")) i++;
    }
    const keyStart = i;
    while (i < n && s[i] !== "=" && s[i] !== "\n" && s[i] !== ":") i++;
    const key = s.slice(keyStart, i).trim();
    if (i >= n || s[i] === "\n" || !KEY_RE.test(key)) {
      skipToEol();
      onWarning?.(
        `line ${startLine}: ignoring invalid line ${JSON.stringify(s.slice(lineStart, i).slice(0, 40))}`,
      );
      continue;
    }
    i++; // '=' or ':'
    while (i < n && (s[i] === " " || s[i] === "\t")) i++;
    const q = s[i];
    let value: string;
    if (q === '"' || q === "'" || q === "`") {
      const close = findClosingQuote(s, i + 1, q);
      if (close < 0) {
        // unterminated: treat the rest of the line as an unquoted value
        const eol = s.indexOf("\n", i);
        const end = eol < 0 ? n : eol;
        value = stripInlineComment(s.slice(i, end)).trim();
        i = end;
      } else {
        const raw = s.slice(i + 1, close);
        for (const ch of raw) if (ch === "\n") line++;
        value = q === '"' ? unescapeDouble(raw) : raw;
        i = close + 1;
        // anything after the closing quote up to EOL must be whitespace or a comment
        skipToEol();
      }
    } else {
      const eol = s.indexOf("\n", i);
      const end = eol < 0 ? n : eol;
      value = stripInlineComment(s.slice(i, end)).trim();
      i = end;
    }
    out[key] = value;
  }
  return out;
}

function findClosingQuote(s: string, from: number, q: string): number {
  for (let j = from; j < s.length; j++) {
    if (q === '"' && s[j] === "\\") {
      j++;
      continue;
    }
    if (s[j] === q) return j;
  }
  return -1;
}

function unescapeDouble(raw: string): string {
  return raw.replace(/\\([nrt"\\$])/g, (_m, c: string) => {
    switch (c) {
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "t":
        return "\t";
      default:
        return c;
    }
  });
}

/** `value # comment` → `value` (a `#` directly attached to text, like `a#b`, is kept). */
function stripInlineComment(v: string): string {
  const m = /(^|[ \t])#/.exec(v);
  return m ? v.slice(0, m.index) : v;
}
