// @ts-check
/**
 * A grouped bar chart as SVG text, with min–max whiskers: our own few lines instead of a charting
 * dependency. Groups along x (e.g. cipher and direction), one bar per series in each group.
 */

/**
 * @typedef {{ id: string, label: string, color: string }} Series
 * @typedef {{ series: string, value: number, min: number, max: number }} Bar
 * @typedef {{ label: string, sublabel?: string, bars: Bar[] }} Group
 */

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A "nice" axis maximum and tick step for values up to max.
 * @param {number} max
 */
function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.2 };
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * @param {{ title: string, subtitle?: string, unit: string, series: Series[], groups: Group[], width?: number, height?: number }} chart
 * @returns {string}
 */
export function barChart(chart) {
  const width = chart.width ?? 1100;
  const height = chart.height ?? 460;
  const margin = { top: 64, right: 16, bottom: 92, left: 64 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const maxValue = Math.max(0, ...chart.groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.max) ? b.max : b.value))).filter(Number.isFinite));
  const { top, step } = niceScale(maxValue);
  const y = (/** @type {number} */ v) => margin.top + plotH - (v / top) * plotH;
  const groupW = plotW / Math.max(1, chart.groups.length);
  const barW = Math.max(2, (groupW * 0.8) / Math.max(1, chart.series.length));
  /** @type {string[]} */
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${margin.left}" y="22" font-size="16" font-weight="600">${esc(chart.title)}</text>`);
  if (chart.subtitle) out.push(`<text x="${margin.left}" y="40" fill="#555">${esc(chart.subtitle)}</text>`);
  // Axis and grid.
  for (let v = 0; v <= top + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${yy}" y2="${yy}" stroke="${v === 0 ? '#333' : '#e3e3e3'}"/>`);
    out.push(`<text x="${margin.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#333">${Number(v.toPrecision(6))}</text>`);
  }
  out.push(`<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(chart.unit)}</text>`);
  // Bars.
  chart.groups.forEach((group, gi) => {
    const x0 = margin.left + gi * groupW + (groupW - barW * chart.series.length) / 2;
    chart.series.forEach((series, si) => {
      const bar = group.bars.find((b) => b.series === series.id);
      if (!bar || !Number.isFinite(bar.value)) return;
      const x = x0 + si * barW;
      const yTop = y(bar.value);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${yTop.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(margin.top + plotH - yTop).toFixed(1)}" fill="${series.color}"><title>${esc(`${group.label}${group.sublabel ? ` ${group.sublabel}` : ''}, ${series.label}: ${bar.value.toFixed(0)} ${chart.unit} (${bar.min.toFixed(0)}–${bar.max.toFixed(0)})`)}</title></rect>`,
      );
      if (Number.isFinite(bar.min) && Number.isFinite(bar.max) && bar.max > bar.min) {
        const cx = (x + (barW - 1) / 2).toFixed(1);
        out.push(`<line x1="${cx}" x2="${cx}" y1="${y(bar.min).toFixed(1)}" y2="${y(bar.max).toFixed(1)}" stroke="#222" stroke-width="1"/>`);
      }
    });
    const cx = margin.left + gi * groupW + groupW / 2;
    out.push(`<text x="${cx.toFixed(1)}" y="${margin.top + plotH + 16}" text-anchor="middle" fill="#222">${esc(group.label)}</text>`);
    if (group.sublabel) out.push(`<text x="${cx.toFixed(1)}" y="${margin.top + plotH + 30}" text-anchor="middle" fill="#555">${esc(group.sublabel)}</text>`);
  });
  // Legend.
  const legendY = height - 28;
  let lx = margin.left;
  for (const series of chart.series) {
    out.push(`<rect x="${lx}" y="${legendY - 10}" width="12" height="12" fill="${series.color}"/>`);
    out.push(`<text x="${lx + 16}" y="${legendY}" fill="#222">${esc(series.label)}</text>`);
    lx += 24 + series.label.length * 7;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
