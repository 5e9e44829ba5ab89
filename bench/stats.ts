// min / median / max (and p95) of a list of numbers.
export interface Spread {
  min: number;
  median: number;
  max: number;
  count: number;
}

export function spread(values: number[]): Spread | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { min: v[0], median, max: v[v.length - 1], count: v.length };
}

export function median(values: number[]): number | null {
  return spread(values)?.median ?? null;
}

export interface Dist {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

/** Median, p95 (nearest rank), min and max; NaN for an empty list. */
export function dist(values: number[]): Dist {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, median: NaN, p95: NaN, min: NaN, max: NaN };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  const p95 = v[Math.min(v.length - 1, Math.ceil(0.95 * v.length) - 1)];
  return { n: v.length, median, p95, min: v[0], max: v[v.length - 1] };
}
