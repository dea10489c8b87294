// The local control channel of `zram serve`: a Unix domain socket speaking JSON
// lines — one request {"cmd": ..., "args": {...}} per line, one reply
// {"ok": true, "result": ...} or {"ok": false, "error": "..."} per line. The CLI's
// stat / compact / idle / writeback / recompress / reset commands use it. The
// socket path defaults to one derived from the NBD port, inside the user's
// private runtime directory, so `--port` finds it. Anyone who can connect can
// reset the device: the socket is created 0600 (see unix-socket.ts) and the
// client refuses a socket another user owns.

import net from 'node:net';
import { join } from 'node:path';
import { checkOwnSocket, listenPrivate, privateRuntimeDir } from './unix-socket.js';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

/**
 * The control socket of the server on NBD port `port`: `nbd-<port>.sock` in the
 * user's private runtime directory (created 0700 by the server, `create`).
 */
export function defaultControlPath(port: number, create = false): string {
  return join(privateRuntimeDir(create), `nbd-${port}.sock`);
}

export class ControlServer {
  private readonly server: net.Server;
  readonly path: string;

  private constructor(path: string, server: net.Server) {
    this.path = path;
    this.server = server;
  }

  static async listen(path: string, handler: ControlHandler): Promise<ControlServer> {
    const server = net.createServer((sock) => {
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > 1 << 20) {
          sock.destroy();
          return;
        }
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          void (async () => {
            let reply: unknown;
            try {
              const req = JSON.parse(line) as { cmd?: unknown; args?: unknown };
              if (typeof req.cmd !== 'string') throw new Error('request needs a "cmd" string');
              const args = (req.args && typeof req.args === 'object' ? req.args : {}) as Record<string, unknown>;
              reply = { ok: true, result: await handler(req.cmd, args) };
            } catch (e) {
              reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
            }
            if (!sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
          })();
        }
      });
      sock.on('error', () => undefined);
    });
    await listenPrivate(server, path, 'control socket');
    return new ControlServer(path, server);
  }

  /**
   * Stops listening. libuv unlinks the socket path on close without checking
   * what is there, so anything that replaced our socket at that path is
   * removed too; the default path is in our private 0700 directory, where
   * only we could have replaced it.
   */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Sends one request and waits for its reply. */
export function controlRequest(
  path: string,
  cmd: string,
  args: Record<string, unknown> = {},
  timeoutMs = 60_000,
): Promise<unknown> {
  checkOwnSocket(path, 'control socket');
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ cmd, args })}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const reply = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.error ?? 'request failed'));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? new Error(`no zram server is running (no control socket at ${path})`)
          : e,
      );
    });
  });
}
