export function pageOf(p: number, v: number, out: Uint8Array): Uint8Array;
