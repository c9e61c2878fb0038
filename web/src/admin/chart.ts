/** A small live line chart in SVG: a few named lines over the last points, y from 0 to the max seen. */
import { h } from '../shared/dom.js';
import { num } from '../shared/format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 120;

export interface Line {
  label: string;
  color: string;
}

export class Chart {
  readonly el: HTMLElement;
  private readonly svg: SVGSVGElement;
  private readonly now: HTMLElement;
  private readonly paths: SVGPolylineElement[];

  constructor(
    readonly title: string,
    private readonly lines: Line[],
    private readonly unit: string,
  ) {
    this.svg = document.createElementNS(NS, 'svg');
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.svg.setAttribute('preserveAspectRatio', 'none');
    this.svg.setAttribute('role', 'img');
    this.svg.setAttribute('aria-label', title);
    const grid = document.createElementNS(NS, 'path');
    grid.setAttribute('d', `M0 ${H / 2}H${W}M0 ${H - 0.5}H${W}`);
    grid.setAttribute('stroke', 'currentColor');
    grid.setAttribute('stroke-opacity', '0.12');
    this.svg.append(grid);
    this.paths = lines.map((l) => {
      const p = document.createElementNS(NS, 'polyline');
      p.setAttribute('fill', 'none');
      p.setAttribute('stroke', l.color);
      p.setAttribute('stroke-width', '2');
      p.setAttribute('vector-effect', 'non-scaling-stroke');
      p.dataset.label = l.label;
      this.svg.append(p);
      return p;
    });
    this.now = h('span', { class: 'now' }, '–');
    this.el = h(
      'figure',
      { class: 'chart card', 'data-chart': title },
      h('h3', {}, title, this.now),
      this.svg as unknown as Node,
      h('div', { class: 'legend' }, ...lines.map((l) => h('span', { style: `--c:${l.color}` }, l.label))),
    );
  }

  /** `values[i]` is the series of line i (null = no data at that point). */
  update(values: (number | null)[][]): void {
    const max = Math.max(1e-9, ...values.flat().filter((v): v is number => v !== null)) * 1.15;
    const n = Math.max(...values.map((v) => v.length));
    values.forEach((series, i) => {
      const pts = series
        .map((v, k) => (v === null ? null : `${((k / Math.max(1, n - 1)) * W).toFixed(1)},${(H - (v / max) * (H - 4) - 2).toFixed(1)}`))
        .filter((p) => p !== null);
      this.paths[i]!.setAttribute('points', pts.join(' '));
    });
    this.el.dataset.points = String(n);
    const last = values.map((s) => s[s.length - 1]);
    this.now.textContent =
      this.lines.map((l, i) => `${l.label} ${last[i] === null || last[i] === undefined ? '–' : num(last[i]!)}`).join(' · ') +
      (this.unit ? ` ${this.unit}` : '');
  }
}
