// The wire constants carry proto.md's numbers.
import { describe, expect, it } from 'vitest';
import * as nbd from '../protocol.js';

describe('NBD constants', () => {
  it('has the magics of proto.md', () => {
    expect(Buffer.from(nbd.NBD_MAGIC.toString(16), 'hex').toString('latin1')).toBe('NBDMAGIC');
    expect(Buffer.from(nbd.NBD_IHAVEOPT.toString(16), 'hex').toString('latin1')).toBe('IHAVEOPT');
    expect(nbd.NBD_OPT_REPLY_MAGIC).toBe(0x3e889045565a9n);
    expect(nbd.NBD_REQUEST_MAGIC).toBe(0x25609513);
    expect(nbd.NBD_SIMPLE_REPLY_MAGIC).toBe(0x67446698);
    expect(nbd.NBD_STRUCTURED_REPLY_MAGIC).toBe(0x668e33ef);
  });

  it('numbers options, replies, commands and errors as proto.md', () => {
    expect([
      nbd.NBD_OPT_EXPORT_NAME,
      nbd.NBD_OPT_ABORT,
      nbd.NBD_OPT_LIST,
      nbd.NBD_OPT_STARTTLS,
      nbd.NBD_OPT_INFO,
      nbd.NBD_OPT_GO,
      nbd.NBD_OPT_STRUCTURED_REPLY,
    ]).toEqual([1, 2, 3, 5, 6, 7, 8]);
    expect([nbd.NBD_OPT_LIST_META_CONTEXT, nbd.NBD_OPT_SET_META_CONTEXT]).toEqual([9, 10]);
    expect([nbd.NBD_REP_ACK, nbd.NBD_REP_SERVER, nbd.NBD_REP_INFO]).toEqual([1, 2, 3]);
    expect(nbd.NBD_REP_ERR_UNSUP).toBe(2 ** 31 + 1);
    expect(nbd.NBD_REP_ERR_INVALID).toBe(2 ** 31 + 3);
    expect(nbd.NBD_REP_ERR_UNKNOWN).toBe(2 ** 31 + 6);
    expect(nbd.isOptionReplyError(nbd.NBD_REP_ERR_SHUTDOWN)).toBe(true);
    expect(nbd.isOptionReplyError(nbd.NBD_REP_ACK)).toBe(false);
    expect([
      nbd.NBD_CMD_READ,
      nbd.NBD_CMD_WRITE,
      nbd.NBD_CMD_DISC,
      nbd.NBD_CMD_FLUSH,
      nbd.NBD_CMD_TRIM,
      nbd.NBD_CMD_WRITE_ZEROES,
    ]).toEqual([0, 1, 2, 3, 4, 6]);
    expect([
      nbd.NBD_EPERM,
      nbd.NBD_EIO,
      nbd.NBD_ENOMEM,
      nbd.NBD_EINVAL,
      nbd.NBD_ENOSPC,
      nbd.NBD_EOVERFLOW,
      nbd.NBD_ESHUTDOWN,
    ]).toEqual([1, 5, 12, 22, 28, 75, 108]);
    expect(nbd.NBD_FLAG_SEND_WRITE_ZEROES).toBe(64);
    expect(nbd.NBD_FLAG_CAN_MULTI_CONN).toBe(256);
    expect(nbd.NBD_REPLY_TYPE_ERROR).toBe(32769);
  });
});
