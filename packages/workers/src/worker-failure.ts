// What the service reports when a worker thread dies or throws: the failure
// record kept in stats() and the typed error the affected requests reject with.

export interface WorkerFailure {
  worker: 'compression' | 'swap-io' | 'compaction';
  threadId: number;
  reason: string;
  at: number;
}

/** Thrown for requests that failed because a worker thread died or threw. */
export class WorkerFailedError extends Error {
  readonly worker: WorkerFailure['worker'];
  constructor(worker: WorkerFailure['worker'], message: string, cause?: unknown) {
    super(`${worker} worker failed: ${message}`, { cause });
    this.name = 'WorkerFailedError';
    this.worker = worker;
  }
}
