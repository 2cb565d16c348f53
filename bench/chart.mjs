// Plain SVG charts, no dependencies: grouped bars on a log scale, and a log-log line chart.
// One colour per target, the same in every chart.
const COLORS = { native: '#7f7f7f', 'rofiles-fuse': '#d62728', 'rofiles-fuse-copyup': '#ff9896', 'guard-deny': '#1f77b4', 'guard-copyup': '#aec7e8' }
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
export function barChart ({ title, groups, series }) {
  const W = 60 + groups.length * (series.length * 14 + 24) + 120
  const H = 420
  const y0 = H - 130; const y1 = 40
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
  series.forEach((s, si) => out.push(`<rect x="${60 + si * 190}" y="${H - 18}" width="10" height="10" fill="${color(s.id)}"/><text x="${74 + si * 190}" y="${H - 9}">${esc(s.label)}</text>`))
  out.push('</svg>')
  return out.join('\n')
}

/** points: { [series]: [[x, seconds], ...] } */
export function lineChart ({ title, xLabel, points, series }) {
  const W = 560; const H = 340; const x0 = 60; const x1 = W - 50; const y0 = H - 60; const y1 = 40
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
  series.forEach((s, si) => {
    const pts = (points[s.id] ?? []).filter(p => p[1] > 0)
    if (!pts.length) return
    out.push(`<polyline fill="none" stroke="${color(s.id)}" stroke-width="2" points="${pts.map(p => `${fx(p[0])},${sy.f(p[1])}`).join(' ')}"/>`)
    for (const p of pts) out.push(`<circle cx="${fx(p[0])}" cy="${sy.f(p[1])}" r="3" fill="${color(s.id)}"/>`)
    out.push(`<rect x="${x0 + si * 150}" y="${H - 16}" width="10" height="10" fill="${color(s.id)}"/><text x="${x0 + 14 + si * 150}" y="${H - 7}">${esc(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n')
}
