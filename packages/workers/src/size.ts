// Size arguments as the kernel's memparse accepts them: a number with an optional
// K, M or G suffix (powers of 1024).

export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(String(s).trim());
  if (!m) throw new Error(`bad size '${s}' (use a number with an optional K, M or G suffix, e.g. 512M or 1G)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}
