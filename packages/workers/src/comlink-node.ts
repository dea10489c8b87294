// comlink's Node adapter, typed: the package ships it as a CommonJS module whose
// export is the function itself, which TypeScript sees as a namespace.

import type { MessagePort, Worker } from 'node:worker_threads';
import * as adapter from 'comlink/dist/umd/node-adapter.js';
import type { Endpoint } from 'comlink';

type NodeEndpointFn = (nep: MessagePort | Worker) => Endpoint;

const mod = adapter as unknown as { default?: unknown };
export const nodeEndpoint: NodeEndpointFn = (typeof mod === 'function' ? mod : mod.default) as NodeEndpointFn;
