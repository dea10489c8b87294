// TLS for the NBD export: the policy (off | on | require, as nbdkit's --tls),
// pre-shared keys in nbdkit's PSK file format (GnuTLS psktool's: one
// `username:hexkey` per line), and the STARTTLS upgrade of a connection's
// plaintext socket to a server-side TLS socket. Keys are checked by the TLS
// handshake itself (an unknown user or a wrong key fails it); the server holds
// no certificate, so only PSK suites are offered: TLS 1.3 (PSK with (EC)DHE)
// and, for older clients, TLS 1.2 PSK suites with forward secrecy first.

import fs from 'node:fs';
import type { Socket } from 'node:net';
import tls from 'node:tls';

export type TlsMode = 'off' | 'on' | 'require';

export interface NbdTlsOptions {
  /** off: STARTTLS is refused; on: offered, plaintext allowed; require: nothing but STARTTLS before TLS. */
  mode: TlsMode;
  /** Pre-shared keys by user name (needed unless mode is off). */
  psk?: ReadonlyMap<string, Buffer>;
}

/** TLS 1.2 suites offered (TLS 1.3 suites are OpenSSL's defaults, which all work with PSK). */
const PSK_CIPHERS = [
  'ECDHE-PSK-CHACHA20-POLY1305',
  'DHE-PSK-AES256-GCM-SHA384',
  'DHE-PSK-CHACHA20-POLY1305',
  'DHE-PSK-AES128-GCM-SHA256',
  'PSK-AES256-GCM-SHA384',
  'PSK-CHACHA20-POLY1305',
  'PSK-AES128-GCM-SHA256',
].join(':');

/**
 * The longest key accepted (GnuTLS psktool's and OpenSSL's limit). Node fails
 * the handshake on a longer one with an error that quotes the key, so such a
 * key is refused when the file is read, never at a client's handshake.
 */
export const MAX_PSK_BYTES = 512;

/** A malformed or unsafe PSK file. */
export class PskFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PskFileError';
  }
}

/**
 * Reads a PSK file: `username:hexkey` lines (blank lines skipped). The file
 * must be a regular file (symlinks are not followed) that neither group nor
 * others can read or write, and every key at least 128 bits.
 */
export function loadPskFile(path: string): Map<string, Buffer> {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw new PskFileError(`can't open PSK file ${path}: ${(e as Error).message}`);
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new PskFileError(`PSK file ${path} is not a regular file`);
    if ((st.mode & 0o077) !== 0)
      throw new PskFileError(
        `PSK file ${path} is open to other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    text = fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
  const keys = new Map<string, Buffer>();
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    const user = line.slice(0, Math.max(colon, 0));
    const hex = line.slice(colon + 1);
    if (colon <= 0 || !/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0)
      throw new PskFileError(`PSK file ${path} line ${n + 1}: expected username:hexkey`);
    if (hex.length < 32) throw new PskFileError(`PSK file ${path} line ${n + 1}: key shorter than 128 bits`);
    if (hex.length > 2 * MAX_PSK_BYTES)
      throw new PskFileError(`PSK file ${path} line ${n + 1}: key longer than ${MAX_PSK_BYTES} bytes`);
    if (keys.has(user)) throw new PskFileError(`PSK file ${path} line ${n + 1}: user "${user}" listed twice`);
    keys.set(user, Buffer.from(hex, 'hex'));
  }
  if (keys.size === 0) throw new PskFileError(`PSK file ${path} has no keys`);
  return keys;
}

/** Checks a TLS configuration before the server starts. */
export function checkTlsOptions(t: NbdTlsOptions): void {
  if (t.mode !== 'off' && t.mode !== 'on' && t.mode !== 'require')
    throw new RangeError(`NbdServer: tls mode must be off, on or require, got ${String(t.mode)}`);
  if (t.mode !== 'off' && (!t.psk || t.psk.size === 0))
    throw new RangeError(`NbdServer: tls ${t.mode} needs pre-shared keys (--tls-psk FILE)`);
  for (const [user, key] of t.psk ?? [])
    if (key.length < 16 || key.length > MAX_PSK_BYTES)
      throw new RangeError(`NbdServer: the key of PSK user "${user}" must be 16..${MAX_PSK_BYTES} bytes`);
}

/**
 * Wraps a plaintext socket whose STARTTLS was just acknowledged: the TLS
 * handshake starts at once; `onSecure` runs when it succeeds, with the user
 * the key belonged to.
 */
export function upgradeToTls(socket: Socket, t: NbdTlsOptions, onSecure: (user: string) => void): tls.TLSSocket {
  let user = '';
  const psk = t.psk!;
  const ts = new tls.TLSSocket(socket, {
    isServer: true,
    minVersion: 'TLSv1.2',
    ciphers: PSK_CIPHERS,
    pskCallback: (_s: tls.TLSSocket, identity: string) => {
      const key = psk.get(identity);
      if (key === undefined) return null;
      user = identity;
      return key;
    },
  } as tls.TLSSocketOptions);
  ts.once('secure', () => onSecure(user));
  return ts;
}

/**
 * What may be logged about a socket error: its code only. A TLS error's
 * message can quote key material (OpenSSL's and Node's PSK errors do), so it
 * never reaches the log.
 */
export function socketErrorCode(e: Error): string {
  const code = (e as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : 'unknown error';
}
