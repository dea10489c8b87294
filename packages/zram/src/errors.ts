// Errors zram raises that are not allocator errors: I/O on the backing device
// (EIO, also for an exhausted writeback_limit) and operations that need a
// backing device when none is set (ENODEV), and compression dictionary files
// that are missing (ENOENT) or unusable (EINVAL); and ZramRangeError, a
// RangeError for byte ranges outside the device. Other argument errors
// (EINVAL, ENOSPC, ENOMEM, EBUSY) are ZsError from @zsmalloc/core; page
// indexes outside the device are plain RangeError.

export type ZramErrorCode = 'EIO' | 'ENODEV' | 'ENOENT' | 'EINVAL';

export class ZramError extends Error {
  readonly code: ZramErrorCode;
  /** For writeback: pages written before the error. */
  readonly pagesDone: number;

  constructor(code: ZramErrorCode, message: string, pagesDone = 0) {
    super(message);
    this.name = 'ZramError';
    this.code = code;
    this.pagesDone = pagesDone;
  }
}

/** A byte range that is not inside the device (or not a range of safe non-negative integers); see checkRange. */
export class ZramRangeError extends RangeError {
  readonly code = 'ERANGE';

  constructor(
    readonly op: string,
    readonly offset: number,
    readonly length: number,
    /** The device size in bytes when the range was refused. */
    readonly size: number,
  ) {
    // name stays 'RangeError': a structured clone (postMessage) keeps it a RangeError
    super(`${op}: range [${String(offset)}, +${String(length)}) outside the device (${size} bytes)`);
  }
}
