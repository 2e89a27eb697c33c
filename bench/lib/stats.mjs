// @ts-check
/** Medians with min–max, and ratios taken round by round. */

/**
 * @typedef {{ median: number, min: number, max: number, n: number }} Summary
 */

/**
 * Median, min and max of the finite values (NaN everywhere when there are none).
 * @param {number[]} values
 * @returns {Summary}
 */
export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/**
 * Ratios a/b computed pair by pair: the value of round r of `a` over the value of round r of `b`.
 * @param {Map<number, number>} a   round → value
 * @param {Map<number, number>} b   round → value
 * @returns {Summary}
 */
export function pairedRatio(a, b) {
  /** @type {number[]} */
  const ratios = [];
  for (const [round, value] of a) {
    const other = b.get(round);
    if (other !== undefined && Number.isFinite(value) && Number.isFinite(other) && other !== 0) ratios.push(value / other);
  }
  return summarize(ratios);
}

/**
 * Format a number with a sensible number of digits.
 * @param {number} x
 * @param {number} [digits] significant digits for small numbers
 */
export function fmt(x, digits = 3) {
  if (!Number.isFinite(x)) return '–';
  const abs = Math.abs(x);
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(digits >= 3 ? 1 : 0);
  if (abs >= 1) return x.toFixed(digits - 1);
  return x.toFixed(digits);
}

/**
 * "median (min–max)".
 * @param {Summary} s
 * @param {number} [digits]
 */
export function fmtRange(s, digits = 3) {
  if (s.n === 0) return '–';
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/**
 * A ratio: "0.85× (0.80–0.90)".
 * @param {Summary} s
 */
export function fmtRatio(s) {
  if (s.n === 0) return '–';
  const r = (/** @type {number} */ x) => `${x.toFixed(2)}`;
  if (s.n === 1) return `${r(s.median)}×`;
  return `${r(s.median)}× (${r(s.min)}–${r(s.max)})`;
}
