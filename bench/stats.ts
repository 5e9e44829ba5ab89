// min / median / max of a list of numbers.
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
