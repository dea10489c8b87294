// A one-line progress bar on stderr, redrawn in place with \r: label, bar,
// percent and a short status. Silent when disabled; finish() clears the line.

export class Progress {
  private last = 0;
  constructor(
    private readonly enabled: boolean,
    private readonly label: string,
  ) {}

  /** fraction in [0, 1]; redraws at most every 100 ms unless forced. */
  update(fraction: number, status = '', force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < 100) return;
    this.last = now;
    const f = Math.max(0, Math.min(1, fraction));
    const width = 28;
    const fill = Math.round(f * width);
    const line = `${this.label.padEnd(34).slice(0, 34)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(f * 100).toFixed(0).padStart(3)}% ${status}`;
    const cols = process.stderr.columns ?? 120;
    process.stderr.write(`\r${line.slice(0, Math.max(20, cols - 1)).padEnd(Math.min(cols - 1, 120))}`);
  }

  finish(): void {
    if (!this.enabled) return;
    const cols = process.stderr.columns ?? 120;
    process.stderr.write(`\r${' '.repeat(Math.min(cols - 1, 120))}\r`);
  }
}
