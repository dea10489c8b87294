// The local control channel of `zram serve`: a Unix domain socket speaking JSON
// lines — one request {"cmd": ..., "args": {...}} per line, one reply
// {"ok": true, "result": ...} or {"ok": false, "error": "..."} per line. The CLI's
// stat / compact / idle / writeback / recompress / reset commands use it. The
// socket path defaults to one derived from the NBD port, so `--port` finds it.

import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

export function defaultControlPath(port: number): string {
  return join(tmpdir(), `zram-nbd-${port}.sock`);
}

export class ControlServer {
  private readonly server: net.Server;
  readonly path: string;

  private constructor(path: string, server: net.Server) {
    this.path = path;
    this.server = server;
  }

  static async listen(path: string, handler: ControlHandler): Promise<ControlServer> {
    if (existsSync(path)) {
      // a stale socket from a server that died; refuse if one is still answering
      const alive = await new Promise<boolean>((resolve) => {
        const s = net.connect(path, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (alive) throw new Error(`a zram server already answers on ${path}`);
      rmSync(path, { force: true });
    }
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
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new ControlServer(path, server);
  }

  close(): Promise<void> {
    return new Promise((resolve) =>
      this.server.close(() => {
        rmSync(this.path, { force: true });
        resolve();
      }),
    );
  }
}

/** Sends one request and waits for its reply. */
export function controlRequest(
  path: string,
  cmd: string,
  args: Record<string, unknown> = {},
  timeoutMs = 60_000,
): Promise<unknown> {
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
