// Errors zram raises that are not allocator errors: I/O on the backing device
// (EIO, also for an exhausted writeback_limit) and operations that need a
// backing device when none is set (ENODEV), and compression dictionary files
// that are missing (ENOENT) or unusable (EINVAL). Other argument errors
// (EINVAL, ENOSPC, ENOMEM, EBUSY) are ZsError from @zsmalloc/core; offsets
// outside the device are RangeError.

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
