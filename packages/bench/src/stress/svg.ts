// Hand-drawn SVG charts for the stress report (no chart library): a line chart
// with optional vertical markers, grouped horizontal bars, and a grid of colored
// cells for physical memory. Each returns one <svg> element as a string.

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export { esc };

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** A "nice" axis: ticks at 1/2/5 x 10^k covering [0, max]. */
function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const fmtTick = (v: number): string =>
  Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(v % 1000 === 0 ? 0 : 1)}k` : String(Number(v.toPrecision(4)));

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
}

export interface LineOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Vertical markers at these x values (e.g. compaction runs). */
  markers?: { x: number; color?: string }[];
  markerLabel?: string;
  yMax?: number;
  /** Integer x ticks only at the data's x values. */
  discreteX?: boolean;
}

export function lineChart(series: Series[], o: LineOptions): string {
  const W = o.width ?? 820;
  const H = o.height ?? 320;
  const L = 64;
  const R = 240;
  const T = 36;
  const B = 48;
  const pw = W - L - R;
  const ph = H - T - B;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMin = o.discreteX ? Math.min(...xs) : 0;
  const xMax = Math.max(xMin + 1e-9, ...xs);
  const yTicks = niceTicks(o.yMax ?? Math.max(...ys, 1e-9));
  const yMax = yTicks[yTicks.length - 1]!;
  const sx = (x: number): number => L + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const sy = (y: number): number => T + ph - (y / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" class="chart">`,
  ];
  out.push(`<text x="${L}" y="20" class="title">${esc(o.title)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${L}" x2="${L + pw}" y1="${sy(t)}" y2="${sy(t)}" class="grid"/>`);
    out.push(`<text x="${L - 6}" y="${sy(t) + 4}" text-anchor="end" class="tick">${fmtTick(t)}</text>`);
  }
  const xTicks = o.discreteX
    ? [...new Set(xs)].sort((a, b) => a - b)
    : niceTicks(xMax, 6).filter((v) => v <= xMax * 1.0001);
  for (const t of xTicks)
    out.push(`<text x="${sx(t)}" y="${T + ph + 16}" text-anchor="middle" class="tick">${fmtTick(t)}</text>`);
  out.push(
    `<line x1="${L}" x2="${L + pw}" y1="${T + ph}" y2="${T + ph}" class="axis"/><line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" class="axis"/>`,
  );
  out.push(`<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle" class="label">${esc(o.xLabel)}</text>`);
  out.push(
    `<text transform="translate(14 ${T + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${esc(o.yLabel)}</text>`,
  );
  for (const m of o.markers ?? []) {
    out.push(
      `<line x1="${sx(m.x)}" x2="${sx(m.x)}" y1="${T}" y2="${T + ph}" stroke="${m.color ?? '#999'}" stroke-dasharray="3 3" stroke-width="1"/>`,
    );
  }
  series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length]!;
    const d = s.points.map((p, k) => `${k === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (s.points.length <= 24)
      for (const p of s.points)
        out.push(`<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3.5" fill="${c}"/>`);
    const ly = T + 8 + i * 18;
    out.push(
      `<line x1="${L + pw + 12}" x2="${L + pw + 32}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${L + pw + 38}" y="${ly + 4}" class="legend">${esc(s.name)}</text>`);
  });
  if (o.markers !== undefined && o.markers.length > 0 && o.markerLabel !== undefined) {
    const ly = T + 8 + series.length * 18;
    out.push(
      `<line x1="${L + pw + 22}" x2="${L + pw + 22}" y1="${ly - 7}" y2="${ly + 7}" stroke="${o.markers[0]!.color ?? '#999'}" stroke-dasharray="3 3"/>`,
    );
    out.push(`<text x="${L + pw + 38}" y="${ly + 4}" class="legend">${esc(o.markerLabel)}</text>`);
  }
  out.push('</svg>');
  return out.join('');
}

export interface BarGroup {
  category: string;
  values: Record<string, number>;
}

/** Horizontal bars: one row per category, one bar per key in `keys`. */
export function groupedBars(
  groups: BarGroup[],
  keys: string[],
  o: { title: string; xLabel: string; width?: number },
): string {
  const W = o.width ?? 720;
  const L = 190;
  const R = 150;
  const T = 36;
  const barH = 12;
  const gap = 10;
  const rowH = keys.length * barH + gap;
  const H = T + groups.length * rowH + 44;
  const pw = W - L - R;
  const max = Math.max(1e-9, ...groups.flatMap((g) => keys.map((k) => g.values[k] ?? 0)));
  const ticks = niceTicks(max);
  const xMax = ticks[ticks.length - 1]!;
  const sx = (v: number): number => L + (v / xMax) * pw;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" class="chart">`,
  ];
  out.push(`<text x="${L}" y="20" class="title">${esc(o.title)}</text>`);
  const bottom = T + groups.length * rowH;
  for (const t of ticks) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${T}" y2="${bottom}" class="grid"/>`);
    out.push(`<text x="${sx(t)}" y="${bottom + 14}" text-anchor="middle" class="tick">${fmtTick(t)}</text>`);
  }
  groups.forEach((g, gi) => {
    const y0 = T + gi * rowH;
    out.push(
      `<text x="${L - 8}" y="${y0 + (keys.length * barH) / 2 + 4}" text-anchor="end" class="tick">${esc(g.category)}</text>`,
    );
    keys.forEach((k, ki) => {
      const v = g.values[k] ?? 0;
      out.push(
        `<rect x="${L}" y="${y0 + ki * barH}" width="${Math.max(0, sx(v) - L).toFixed(1)}" height="${barH - 2}" fill="${PALETTE[ki % PALETTE.length]}"><title>${esc(`${g.category} ${k}: ${v.toFixed(3)}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(sx(v) + 4).toFixed(1)}" y="${y0 + ki * barH + barH - 3}" class="small">${v.toFixed(v >= 100 ? 0 : 2)}</text>`,
      );
    });
  });
  out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${bottom}" class="axis"/>`);
  out.push(`<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle" class="label">${esc(o.xLabel)}</text>`);
  keys.forEach((k, ki) => {
    const ly = T + 8 + ki * 18;
    out.push(
      `<rect x="${L + pw + 16}" y="${ly - 6}" width="14" height="10" fill="${PALETTE[ki % PALETTE.length]}"/><text x="${L + pw + 36}" y="${ly + 3}" class="legend">${esc(k)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('');
}

export const FRAME_KINDS = [
  { name: 'free', color: '#eeeeee' },
  { name: 'zspage', color: '#1f77b4' },
  { name: 'huge', color: '#ff7f0e' },
  { name: 'isolated', color: '#d62728' },
  { name: 'allocPages', color: '#2ca02c' },
];

/**
 * Physical memory as a grid of cells, one per frame (or per group of frames when
 * there are more than maxCells: the cell shows the group's most common non-free
 * kind, shaded by how much of the group is in use).
 */
export function frameGrid(
  map: ArrayLike<number>,
  o: { title: string; cols?: number; maxCells?: number; cell?: number },
): string {
  const maxCells = o.maxCells ?? 4096;
  const per = Math.max(1, Math.ceil(map.length / maxCells));
  const cells = Math.ceil(map.length / per);
  const cols = o.cols ?? 64;
  const cs = o.cell ?? 8;
  const rows = Math.ceil(cells / cols);
  const W = cols * cs + 2;
  const T = 28;
  const H = T + rows * cs + 30;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" class="chart">`,
  ];
  out.push(`<text x="1" y="18" class="title">${esc(o.title)}${per > 1 ? ` (one cell = ${per} frames)` : ''}</text>`);
  const counts = new Array<number>(FRAME_KINDS.length).fill(0);
  for (let c = 0; c < cells; c++) {
    const tally = new Array<number>(FRAME_KINDS.length).fill(0);
    const end = Math.min(map.length, (c + 1) * per);
    for (let i = c * per; i < end; i++) {
      tally[map[i]!]!++;
      counts[map[i]!]!++;
    }
    let kind = 0;
    for (let k = 1; k < tally.length; k++) if (tally[k]! > 0 && (kind === 0 || tally[k]! > tally[kind]!)) kind = k;
    const used = (end - c * per - tally[0]!) / (end - c * per);
    const opacity = kind === 0 ? 1 : (0.35 + 0.65 * used).toFixed(2);
    out.push(
      `<rect x="${1 + (c % cols) * cs}" y="${T + Math.floor(c / cols) * cs}" width="${cs - 1}" height="${cs - 1}" fill="${FRAME_KINDS[kind]!.color}" fill-opacity="${opacity}"/>`,
    );
  }
  let lx = 1;
  FRAME_KINDS.forEach((k, i) => {
    const y = T + rows * cs + 18;
    out.push(
      `<rect x="${lx}" y="${y - 9}" width="10" height="10" fill="${k.color}"/><text x="${lx + 14}" y="${y}" class="legend">${k.name} ${counts[i]}</text>`,
    );
    lx += 14 + (k.name.length + String(counts[i]).length + 1) * 7 + 12;
  });
  out.push('</svg>');
  return out.join('');
}

export interface ErrorBar {
  label: string;
  median: number;
  lo: number;
  hi: number;
  /** The individual samples, drawn as dots. */
  samples?: number[];
}

/** Horizontal bars at the median with 95% interval whiskers and the samples as dots. */
export function errorBars(bars: ErrorBar[], o: { title: string; xLabel: string; width?: number }): string {
  const W = o.width ?? 560;
  const L = 150;
  const R = 110;
  const T = 36;
  const rowH = 26;
  const H = T + bars.length * rowH + 44;
  const pw = W - L - R;
  const max = Math.max(1e-9, ...bars.flatMap((b) => [b.hi, b.median, ...(b.samples ?? [])]));
  const ticks = niceTicks(max);
  const xMax = ticks[ticks.length - 1]!;
  const sx = (v: number): number => L + (Math.max(0, v) / xMax) * pw;
  const bottom = T + bars.length * rowH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" class="chart">`,
    `<text x="${L}" y="20" class="title">${esc(o.title)}</text>`,
  ];
  for (const t of ticks) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${T}" y2="${bottom}" class="grid"/>`);
    out.push(`<text x="${sx(t)}" y="${bottom + 14}" text-anchor="middle" class="tick">${fmtTick(t)}</text>`);
  }
  bars.forEach((b, i) => {
    const y = T + i * rowH;
    const mid = y + rowH / 2 - 2;
    const color = PALETTE[i % PALETTE.length]!;
    out.push(`<text x="${L - 8}" y="${mid + 4}" text-anchor="end" class="tick">${esc(b.label)}</text>`);
    out.push(
      `<rect x="${L}" y="${y + 4}" width="${Math.max(0, sx(b.median) - L).toFixed(1)}" height="${rowH - 12}" fill="${color}" opacity="0.45"><title>${esc(`${b.label}: median ${b.median.toFixed(3)}, 95% CI ${b.lo.toFixed(3)}-${b.hi.toFixed(3)}`)}</title></rect>`,
    );
    // whisker: the 95% interval
    out.push(
      `<line x1="${sx(b.lo).toFixed(1)}" x2="${sx(b.hi).toFixed(1)}" y1="${mid}" y2="${mid}" stroke="#111" stroke-width="1.5"/>`,
    );
    for (const x of [b.lo, b.hi])
      out.push(
        `<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${mid - 6}" y2="${mid + 6}" stroke="#111" stroke-width="1.5"/>`,
      );
    for (const v of b.samples ?? [])
      out.push(
        `<circle cx="${sx(v).toFixed(1)}" cy="${mid}" r="2.5" fill="${color}" stroke="#fff" stroke-width="0.5"/>`,
      );
    out.push(
      `<text x="${(sx(b.hi) + 6).toFixed(1)}" y="${mid + 4}" class="small">${b.median.toFixed(b.median >= 100 ? 0 : 2)} [${b.lo.toFixed(b.lo >= 100 ? 0 : 2)}, ${b.hi.toFixed(b.hi >= 100 ? 0 : 2)}]</text>`,
    );
  });
  out.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${bottom}" class="axis"/>`);
  out.push(`<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle" class="label">${esc(o.xLabel)}</text>`);
  out.push('</svg>');
  return out.join('');
}
