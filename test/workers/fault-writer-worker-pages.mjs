// The page contents of the kill trials: version v of page p (0: a zero page).
/** @param {number} p @param {number} v @param {Uint8Array} out */
export function pageOf(p, v, out) {
  if (v === 0) return out.fill(0);
  for (let i = 0; i < 4096; i++) out[i] = (Math.imul(i >>> 3, v * 31 + p) >>> 13) & (v % 3 === 0 ? 0xff : 0x0f);
  return out;
}
