// The HTML version of a plain-text email (send-reminder, send-notification): a minimal document
// with the subject as its title and one <p> per paragraph, every text escaped; a line break
// inside a paragraph becomes <br>. No markup from the data ever reaches the HTML.

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]);
}

/** One line: no control characters (subjects, template variables). */
export function oneLine(value: string): string {
  // deno-lint-ignore no-control-regex
  return value.replace(/[\u0000-\u001f\u007f]+/g, " ").replace(/ {2,}/g, " ").trim();
}

/** The paragraphs of a plain text: split at blank lines, line ends normalised, empty ones dropped. */
export function textParagraphs(text: string): string[] {
  return text.replace(/\r\n?/g, "\n").split(/\n[ \t]*\n/).map((p) => p.trim()).filter((p) => p !== "");
}

/** The HTML document of an email whose plain text is these paragraphs. */
export function htmlEmail(subject: string, paragraphs: readonly string[]): string {
  const body = paragraphs.map((p) => `<p>${p.split("\n").map(escapeHtml).join("<br>\n")}</p>`).join("\n");
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(oneLine(subject))}</title></head>\n` +
    `<body>\n${body}\n</body></html>\n`;
}
