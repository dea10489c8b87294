// ZsError: the typed error every rejected call throws. A rejected call changes nothing.

export type ZsErrorCode = 'EINVAL' | 'ENOSPC' | 'ENOMEM' | 'EBUSY';

export class ZsError extends Error {
  readonly code: ZsErrorCode;
  constructor(code: ZsErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ZsError';
    this.code = code;
  }
}
