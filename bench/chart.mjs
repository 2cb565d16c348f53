// Plain SVG charts, no dependencies: grouped bars on a log scale, and a log-log line chart.
// One colour per target, the same in every chart.
const COLORS = { native: '#7f7f7f', 'rofiles-fuse': '#d62728', 'rofiles-fuse-copyup': '#ff9896', 'guard-deny': '#1f77b4', 'guard-copyup': '#aec7e8' }
const LEGEND_ENTRY = 200 // px per legend entry; entries wrap into rows that fit the chart
const color = id => COLORS[id] ?? '#2ca02c'

function esc (s) { return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;') }

function logScale (min, max, y0, y1) {
  const lo = Math.floor(Math.log10(min))
  const hi = Math.ceil(Math.log10(max))
  const f = v => y0 - (Math.log10(v) - lo) / (hi - lo) * (y0 - y1)
  const ticks = []
  for (let e = lo; e <= hi; e++) ticks.push(10 ** e)
  return { f, ticks }
}

function tickLabel (v) { return v >= 1 ? `${v} s` : v >= 0.001 ? `${v * 1000} ms` : `${v * 1e6} µs` }

/** groups: [{ label, values: { [series]: seconds } }], series: [{ id, label }] */
/** Legend entries in rows that fit `width`: the SVG elements and the height they take. */
function legend (series, width, top) {
  const perRow = Math.max(1, Math.floor((width - 70) / LEGEND_ENTRY))
  const out = series.map((s, i) => {
    const x = 60 + (i % perRow) * LEGEND_ENTRY
    const y = top + Math.floor(i / perRow) * 16
    return `<rect x="${x}" y="${y}" width="10" height="10" fill="${color(s.id)}"/><text x="${x + 14}" y="${y + 9}">${esc(s.label)}</text>`
  })
  return { out, height: Math.ceil(series.length / perRow) * 16 }
}

export function barChart ({ title, groups, series }) {
  const W = Math.max(60 + groups.length * (series.length * 14 + 24) + 150, 640) // room for the last rotated label
  const rowsH = Math.ceil(series.length / Math.max(1, Math.floor((W - 70) / LEGEND_ENTRY))) * 16
  const H = 410 + rowsH
  const y0 = 290; const y1 = 40
  const all = groups.flatMap(g => series.map(s => g.values[s.id]).filter(v => v > 0))
  const { f, ticks } = logScale(Math.min(...all), Math.max(...all), y0, y1)
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="20" font-size="14">${esc(title)}</text>`]
  for (const t of ticks) out.push(`<line x1="55" x2="${W - 10}" y1="${f(t)}" y2="${f(t)}" stroke="#ddd"/><text x="50" y="${f(t) + 4}" text-anchor="end">${tickLabel(t)}</text>`)
  groups.forEach((g, gi) => {
    const gx = 60 + gi * (series.length * 14 + 24)
    series.forEach((s, si) => {
      const v = g.values[s.id]
      if (!(v > 0)) return
      const x = gx + si * 14
      out.push(`<rect x="${x}" y="${f(v)}" width="12" height="${y0 - f(v)}" fill="${color(s.id)}"><title>${esc(s.label)}: ${v.toFixed(3)} s</title></rect>`)
    })
    out.push(`<text transform="translate(${gx + series.length * 7},${y0 + 10}) rotate(35)" font-size="10">${esc(g.label)}</text>`)
  })
  out.push(...legend(series, W, H - rowsH - 6).out)
  out.push('</svg>')
  return out.join('\n')
}

/**
 * groups: [{ label, values: { [series]: { median, min, max } | null } }]: ratios on a log scale
 * around a line at 1.0, each bar with the range of its per-round ratios.
 */
export function ratioChart ({ title, groups, series }) {
  const W = Math.max(60 + groups.length * (series.length * 16 + 24) + 150, 640) // room for the last rotated label
  const rowsH = Math.ceil(series.length / Math.max(1, Math.floor((W - 70) / LEGEND_ENTRY))) * 16
  const H = 410 + rowsH
  const y0 = 290; const y1 = 40
  const all = groups.flatMap(g => series.flatMap(s => g.values[s.id] ? [g.values[s.id].min, g.values[s.id].max, g.values[s.id].median] : [])).filter(v => v > 0)
  const { f, ticks } = logScale(Math.min(0.5, ...all), Math.max(2, ...all), y0, y1)
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="20" font-size="14">${esc(title)}</text>`]
  for (const t of ticks) out.push(`<line x1="55" x2="${W - 10}" y1="${f(t)}" y2="${f(t)}" stroke="#ddd"/><text x="50" y="${f(t) + 4}" text-anchor="end">${t}x</text>`)
  out.push(`<line x1="55" x2="${W - 10}" y1="${f(1)}" y2="${f(1)}" stroke="black" stroke-width="1.5"/><text x="${W - 12}" y="${f(1) - 4}" text-anchor="end">1.0: as fast</text>`)
  groups.forEach((g, gi) => {
    const gx = 60 + gi * (series.length * 16 + 24)
    series.forEach((s, si) => {
      const v = g.values[s.id]
      if (!v || !(v.median > 0)) return
      const x = gx + si * 16
      const top = Math.min(f(v.median), f(1)); const h = Math.abs(f(v.median) - f(1))
      out.push(`<rect x="${x}" y="${top}" width="12" height="${Math.max(h, 1)}" fill="${color(s.id)}"><title>${esc(s.label)}: ${v.median.toFixed(2)} (${v.min.toFixed(2)}-${v.max.toFixed(2)})</title></rect>`)
      out.push(`<line x1="${x + 6}" x2="${x + 6}" y1="${f(v.max)}" y2="${f(v.min)}" stroke="black"/>`)
    })
    out.push(`<text transform="translate(${gx + series.length * 8},${y0 + 10}) rotate(35)" font-size="10">${esc(g.label)}</text>`)
  })
  out.push(...legend(series, W, H - rowsH - 6).out)
  out.push('</svg>')
  return out.join('\n')
}

/** points: { [series]: [[x, seconds], ...] } */
export function lineChart ({ title, xLabel, points, series }) {
  const W = 560; const x0 = 60; const x1 = W - 50
  const rowsH = Math.ceil(series.length / Math.max(1, Math.floor((W - 70) / LEGEND_ENTRY))) * 16
  const H = 324 + rowsH; const y0 = 280; const y1 = 40
  const xs = Object.values(points).flat().map(p => p[0])
  const ys = Object.values(points).flat().map(p => p[1]).filter(v => v > 0)
  const sy = logScale(Math.min(...ys), Math.max(...ys), y0, y1)
  const xlo = Math.log10(Math.min(...xs)); const xhi = Math.log10(Math.max(...xs))
  const fx = v => x0 + (Math.log10(v) - xlo) / ((xhi - xlo) || 1) * (x1 - x0)
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="20" font-size="14">${esc(title)}</text>`]
  for (const t of sy.ticks) out.push(`<line x1="${x0}" x2="${x1}" y1="${sy.f(t)}" y2="${sy.f(t)}" stroke="#ddd"/><text x="${x0 - 5}" y="${sy.f(t) + 4}" text-anchor="end">${tickLabel(t)}</text>`)
  for (const x of [...new Set(xs)]) out.push(`<text x="${fx(x)}" y="${y0 + 15}" text-anchor="middle">${x}</text>`)
  out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 32}" text-anchor="middle">${esc(xLabel)}</text>`)
  series.forEach(s => {
    const pts = (points[s.id] ?? []).filter(p => p[1] > 0)
    if (!pts.length) return
    out.push(`<polyline fill="none" stroke="${color(s.id)}" stroke-width="2" points="${pts.map(p => `${fx(p[0])},${sy.f(p[1])}`).join(' ')}"/>`)
    for (const p of pts) out.push(`<circle cx="${fx(p[0])}" cy="${sy.f(p[1])}" r="3" fill="${color(s.id)}"/>`)
  })
  out.push(...legend(series, W, H - rowsH - 6).out)
  out.push('</svg>')
  return out.join('\n')
}
