// Private Unix-domain sockets: where a socket may be created and how, for both
// the control channel and `zram serve --unix`. A socket is created mode 0600
// whatever the umask; a path that already exists is reused only when it is a
// stale socket of ours (nothing answers on it), and anything else there — a
// regular file, a symlink, another user's socket, a live server — makes
// startup fail without deleting it. A client only talks to a socket its own
// user owns. The default directory is private (0700) and checked, never
// trusted: it must be a real directory (not a symlink), owned by us, with no
// group or other access.

import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A socket path that may not be used, with why. */
export class SocketPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketPathError';
  }
}

function uid(): number {
  return process.getuid?.() ?? -1;
}

/**
 * The user's private runtime directory for zram sockets: $XDG_RUNTIME_DIR/zram
 * when that is set, else `zram-<uid>` under the temp directory. Created 0700 if
 * missing (with `create`); refused unless it is a directory (not a symlink),
 * ours, and closed to group and others.
 */
export function privateRuntimeDir(create: boolean): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  const dir = xdg?.startsWith('/') ? join(xdg, 'zram') : join(tmpdir(), `zram-${uid()}`);
  if (create) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if (!create && (e as NodeJS.ErrnoException).code === 'ENOENT') return dir; // nothing runs yet
    throw e;
  }
  if (!st.isDirectory()) throw new SocketPathError(`${dir} is not a directory (a symlink?); refusing to use it`);
  if (st.uid !== uid()) throw new SocketPathError(`${dir} belongs to uid ${st.uid}, not to us; refusing to use it`);
  if ((st.mode & 0o077) !== 0)
    throw new SocketPathError(
      `${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`,
    );
  return dir;
}

/** Whether something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * Makes `path` free for a new socket: missing is fine; a stale socket of ours is
 * removed; anything else throws and is left where it is.
 */
async function clearStale(path: string, what: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new SocketPathError(`${what} ${path} exists and is not a socket; leaving it alone`);
  if (st.uid !== uid()) throw new SocketPathError(`${what} ${path} is another user's socket; leaving it alone`);
  if (await answers(path)) throw new SocketPathError(`a server already answers on ${what} ${path}`);
  fs.unlinkSync(path);
}

/**
 * Listens on a Unix socket at `path`, created 0600 regardless of the umask: the
 * umask is narrowed around bind(2), which Node issues synchronously inside
 * listen(), so the socket never exists with a wider mode. Nothing is changed
 * by path afterwards (a chmod would follow a symlink swapped in meanwhile);
 * the result is only checked with lstat. Closing the server removes the path
 * (libuv unlinks it on close, whatever is there by then), so a socket path
 * must live where only we can replace it: a private directory.
 */
export async function listenPrivate(server: net.Server, path: string, what: string): Promise<void> {
  await clearStale(path, what);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    const old = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
  const st = fs.lstatSync(path);
  if (!st.isSocket() || (st.mode & 0o777) !== 0o600 || st.uid !== uid()) {
    server.close();
    throw new SocketPathError(`${what} ${path} did not come out a private socket`);
  }
}

/** A client's check before connecting: the socket must exist and be owned by this user. */
export function checkOwnSocket(path: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // the connect reports it
    throw e;
  }
  if (!st.isSocket()) throw new SocketPathError(`${what} ${path} is not a socket`);
  if (st.uid !== uid())
    throw new SocketPathError(`${what} ${path} belongs to uid ${st.uid}, not to us; refusing to talk to it`);
}
