/**
 * A small TOML parser, complete enough for `supabase/config.toml`.
 *
 * Supported: comments, `[table]` / `[a."b.c".d]` headers, `[[array.of.tables]]`, bare / quoted /
 * dotted keys, basic and literal strings (single- and multi-line, with escapes), integers
 * (decimal with `_`, hex, octal, binary), floats (incl. `inf`/`nan`), booleans, arrays (multi-line,
 * trailing commas, comments inside), inline tables. Dates/times are returned as their source
 * string. Redefinition of a key is an error, as in TOML.
 */

export type TomlValue =
  | string
  | number
  | boolean
  | TomlValue[]
  | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export class TomlError extends Error {
  constructor(message: string, line: number) {
    super(`TOML parse error on line ${line}: ${message}`);
    this.name = "TomlError";
  }
}

const BARE_KEY = /[A-Za-z0-9_-]/;

export function parseToml(src: string): TomlTable {
  return new Parser(src.replace(/^\uFEFF/, "")).parseDocument();
}

class Parser {
  private i = 0;
  private readonly root: TomlTable = {};
  /** Tables created by headers or dotted keys (cannot be re-opened by a header twice). */
  private readonly explicitTables = new Set<TomlTable>();
  /** Inline tables and arrays of inline values are frozen. */
  private readonly frozen = new Set<unknown>();
  private readonly arrayTables = new Set<TomlValue[]>();

  constructor(private readonly s: string) {}

  private get line(): number {
    let n = 1;
    for (let k = 0; k < this.i && k < this.s.length; k++) if (this.s[k] === "\n") n++;
    return n;
  }

  private fail(msg: string): never {
    throw new TomlError(msg, this.line);
  }

  private peek(off = 0): string {
    return this.s[this.i + off] ?? "";
  }

  private startsWith(str: string): boolean {
    return this.s.startsWith(str, this.i);
  }

  /** Skip spaces and tabs. */
  private ws(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }

  /** Skip a comment if present. */
  private comment(): void {
    if (this.peek() === "#") {
      while (this.i < this.s.length && this.peek() !== "\n") this.i++;
    }
  }

  /** Expect end of line (after optional whitespace/comment). */
  private eol(): void {
    this.ws();
    this.comment();
    if (this.i >= this.s.length) return;
    if (this.peek() === "\r" && this.peek(1) === "\n") {
      this.i += 2;
      return;
    }
    if (this.peek() === "\n") {
      this.i++;
      return;
    }
    this.fail(`unexpected character ${JSON.stringify(this.peek())}`);
  }

  /** Skip whitespace, newlines and comments (used inside arrays). */
  private wsNl(): void {
    for (;;) {
      this.ws();
      this.comment();
      if (this.peek() === "\n") this.i++;
      else if (this.peek() === "\r" && this.peek(1) === "\n") this.i += 2;
      else return;
    }
  }

  parseDocument(): TomlTable {
    let current = this.root;
    while (this.i < this.s.length) {
      this.ws();
      const c = this.peek();
      if (c === "#" || c === "\n" || c === "\r" || c === "") {
        this.eol();
        continue;
      }
      if (c === "[") {
        current = this.parseHeader();
        this.eol();
        continue;
      }
      this.parseKeyValue(current);
      this.eol();
    }
    return this.root;
  }

  private parseHeader(): TomlTable {
    const isArray = this.startsWith("[[");
    this.i += isArray ? 2 : 1;
    this.ws();
    const keys = this.parseKey();
    this.ws();
    if (isArray) {
      if (!this.startsWith("]]")) this.fail("expected ']]'");
      this.i += 2;
    } else {
      if (this.peek() !== "]") this.fail("expected ']'");
      this.i++;
    }
    let t = this.root;
    for (let k = 0; k < keys.length - 1; k++) t = this.descend(t, keys[k], true);
    const last = keys[keys.length - 1];
    if (isArray) {
      let arr = t[last];
      if (arr === undefined) {
        arr = [];
        t[last] = arr;
        this.arrayTables.add(arr);
      } else if (!Array.isArray(arr) || !this.arrayTables.has(arr)) {
        this.fail(`cannot redefine '${keys.join(".")}' as an array of tables`);
      }
      const tbl: TomlTable = {};
      arr.push(tbl);
      return tbl;
    }
    const existing = t[last];
    if (existing === undefined) {
      const tbl: TomlTable = {};
      t[last] = tbl;
      this.explicitTables.add(tbl);
      return tbl;
    }
    if (!isTable(existing) || this.explicitTables.has(existing) || this.frozen.has(existing)) {
      this.fail(`table '${keys.join(".")}' defined more than once`);
    }
    this.explicitTables.add(existing);
    return existing;
  }

  /** Walk into (or create) a sub-table while resolving a header or dotted key. */
  private descend(t: TomlTable, key: string, forHeader: boolean): TomlTable {
    const v = t[key];
    if (v === undefined) {
      const tbl: TomlTable = {};
      t[key] = tbl;
      return tbl;
    }
    if (Array.isArray(v) && forHeader && this.arrayTables.has(v)) {
      const lastEl = v[v.length - 1];
      if (isTable(lastEl)) return lastEl;
    }
    if (!isTable(v) || this.frozen.has(v)) this.fail(`key '${key}' is not a table`);
    return v;
  }

  private parseKeyValue(table: TomlTable): void {
    const keys = this.parseKey();
    this.ws();
    if (this.peek() !== "=") this.fail("expected '=' after key");
    this.i++;
    this.ws();
    const value = this.parseValue();
    let t = table;
    for (let k = 0; k < keys.length - 1; k++) t = this.descend(t, keys[k], false);
    const last = keys[keys.length - 1];
    if (Object.prototype.hasOwnProperty.call(t, last)) {
      this.fail(`duplicate key '${keys.join(".")}'`);
    }
    t[last] = value;
  }

  private parseKey(): string[] {
    const keys: string[] = [];
    for (;;) {
      this.ws();
      const c = this.peek();
      if (c === '"') keys.push(this.parseBasicString());
      else if (c === "'") keys.push(this.parseLiteralString());
      else {
        const start = this.i;
        while (BARE_KEY.test(this.peek())) this.i++;
        if (start === this.i) this.fail("expected a key");
        keys.push(this.s.slice(start, this.i));
      }
      this.ws();
      if (this.peek() === ".") {
        this.i++;
        continue;
      }
      return keys;
    }
  }

  private parseValue(): TomlValue {
    const c = this.peek();
    if (c === '"') {
      return this.startsWith('"""') ? this.parseMultilineBasic() : this.parseBasicString();
    }
    if (c === "'") {
      return this.startsWith("'''") ? this.parseMultilineLiteral() : this.parseLiteralString();
    }
    if (c === "[") return this.parseArray();
    if (c === "{") return this.parseInlineTable();
    if (this.startsWith("true") && !BARE_KEY.test(this.peek(4))) {
      this.i += 4;
      return true;
    }
    if (this.startsWith("false") && !BARE_KEY.test(this.peek(5))) {
      this.i += 5;
      return false;
    }
    return this.parseNumberOrDate();
  }

  private parseNumberOrDate(): TomlValue {
    const start = this.i;
    // A token ends at whitespace, comma, closing bracket/brace, comment or newline. Dates may
    // contain a single space between date and time ("1979-05-27 07:32:00Z").
    while (this.i < this.s.length && !/[\s,\]}#]/.test(this.peek())) this.i++;
    let tok = this.s.slice(start, this.i);
    if (/^\d{4}-\d{2}-\d{2}$/.test(tok) && this.peek() === " " && /^\d{2}:/.test(this.s.slice(this.i + 1, this.i + 4))) {
      this.i++;
      while (this.i < this.s.length && !/[\s,\]}#]/.test(this.peek())) this.i++;
      tok = this.s.slice(start, this.i);
    }
    if (tok === "") this.fail("expected a value");
    if (/^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?$/.test(tok) ||
      /^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(tok)) {
      return tok;
    }
    if (/^[+-]?(inf|nan)$/.test(tok)) {
      if (tok.endsWith("nan")) return NaN;
      return tok.startsWith("-") ? -Infinity : Infinity;
    }
    if (/^0x[0-9A-Fa-f](_?[0-9A-Fa-f])*$/.test(tok)) return parseInt(tok.slice(2).replace(/_/g, ""), 16);
    if (/^0o[0-7](_?[0-7])*$/.test(tok)) return parseInt(tok.slice(2).replace(/_/g, ""), 8);
    if (/^0b[01](_?[01])*$/.test(tok)) return parseInt(tok.slice(2).replace(/_/g, ""), 2);
    if (/^[+-]?(0|[1-9](_?\d)*)$/.test(tok)) return Number(tok.replace(/_/g, ""));
    if (/^[+-]?(0|[1-9](_?\d)*)(\.\d(_?\d)*)?([eE][+-]?\d(_?\d)*)?$/.test(tok)) {
      return Number(tok.replace(/_/g, ""));
    }
    this.fail(`invalid value ${JSON.stringify(tok)}`);
  }

  private parseEscape(): string {
    // at the backslash
    this.i++;
    const e = this.peek();
    this.i++;
    switch (e) {
      case "b":
        return "\b";
      case "t":
        return "\t";
      case "n":
        return "\n";
      case "f":
        return "\f";
      case "r":
        return "\r";
      case "e":
        return "\x1b";
      case '"':
        return '"';
      case "\\":
        return "\\";
      case "u":
      case "U": {
        const len = e === "u" ? 4 : 8;
        const hex = this.s.slice(this.i, this.i + len);
        if (!new RegExp(`^[0-9A-Fa-f]{${len}}$`).test(hex)) this.fail("invalid unicode escape");
        this.i += len;
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail("invalid unicode scalar");
        return String.fromCodePoint(cp);
      }
      default:
        this.fail(`invalid escape '\\${e}'`);
    }
  }

  private parseBasicString(): string {
    this.i++; // opening quote
    let out = "";
    for (;;) {
      const c = this.peek();
      if (c === "" || c === "\n") this.fail("unterminated string");
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === "\\") out += this.parseEscape();
      else {
        out += c;
        this.i++;
      }
    }
  }

  private parseLiteralString(): string {
    this.i++;
    const end = this.s.indexOf("'", this.i);
    const nl = this.s.indexOf("\n", this.i);
    if (end < 0 || (nl >= 0 && nl < end)) this.fail("unterminated literal string");
    const out = this.s.slice(this.i, end);
    this.i = end + 1;
    return out;
  }

  private skipLeadingNewline(): void {
    if (this.peek() === "\n") this.i++;
    else if (this.peek() === "\r" && this.peek(1) === "\n") this.i += 2;
  }

  private parseMultilineBasic(): string {
    this.i += 3;
    this.skipLeadingNewline();
    let out = "";
    for (;;) {
      if (this.i >= this.s.length) this.fail("unterminated multi-line string");
      if (this.startsWith('"""')) {
        // up to two extra quotes may directly precede the closing delimiter
        let extra = 0;
        while (extra < 2 && this.peek(3 + extra) === '"') extra++;
        out += '"'.repeat(extra);
        this.i += 3 + extra;
        return out;
      }
      const c = this.peek();
      if (c === "\\") {
        // line-ending backslash: trim whitespace/newlines that follow
        let j = this.i + 1;
        while (this.s[j] === " " || this.s[j] === "\t") j++;
        if (this.s[j] === "\n" || (this.s[j] === "\r" && this.s[j + 1] === "\n")) {
          this.i = j;
          while (/[\s]/.test(this.peek()) && this.i < this.s.length) this.i++;
          continue;
        }
        out += this.parseEscape();
        continue;
      }
      out += c;
      this.i++;
    }
  }

  private parseMultilineLiteral(): string {
    this.i += 3;
    this.skipLeadingNewline();
    const end = this.s.indexOf("'''", this.i);
    if (end < 0) this.fail("unterminated multi-line literal string");
    let stop = end;
    let extra = 0;
    while (extra < 2 && this.s[end + 3 + extra] === "'") extra++;
    stop = end + extra;
    const out = this.s.slice(this.i, stop);
    this.i = stop + 3;
    return out;
  }

  private parseArray(): TomlValue[] {
    this.i++;
    const arr: TomlValue[] = [];
    for (;;) {
      this.wsNl();
      if (this.peek() === "]") {
        this.i++;
        return arr;
      }
      arr.push(this.parseValue());
      this.wsNl();
      if (this.peek() === ",") {
        this.i++;
        continue;
      }
      if (this.peek() === "]") {
        this.i++;
        return arr;
      }
      this.fail("expected ',' or ']' in array");
    }
  }

  private parseInlineTable(): TomlTable {
    this.i++;
    const tbl: TomlTable = {};
    this.ws();
    if (this.peek() === "}") {
      this.i++;
      this.frozen.add(tbl);
      return tbl;
    }
    for (;;) {
      this.ws();
      this.parseKeyValue(tbl);
      this.ws();
      if (this.peek() === ",") {
        this.i++;
        continue;
      }
      if (this.peek() === "}") {
        this.i++;
        this.frozen.add(tbl);
        return tbl;
      }
      this.fail("expected ',' or '}' in inline table");
    }
  }
}

function isTable(v: unknown): v is TomlTable {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
