// The watchdog thread (see watchdog.ts): for each watched thread it holds one end
// of a lifeline channel and, when that end closes, marks the thread's CPU slots dead.
// It takes no lock and does nothing else, so its event loop is never blocked.

import { parentPort } from 'node:worker_threads';
import { markThreadDead } from './cpu-registry.js';
import type { WatchRequest } from './watchdog.js';

parentPort!.on('message', (req: WatchRequest) => {
  const reg = new Int32Array(req.ctl);
  req.port.on('close', () => {
    markThreadDead(reg, req.base, req.threadId);
  });
  // a port only reports 'close' once it is started
  req.port.on('message', () => undefined);
});
