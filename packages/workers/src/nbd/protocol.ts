// NBD protocol codec (pure: no sockets, no timers, no threads): the wire
// format of the nbd project's doc/proto.md, split by section under protocol/:
//   constants     magics, flags, options, reply/info types, commands, errors, sizes
//   wire          64-bit big-endian integers as numbers; NbdProtocolError
//   handshake     server side of fixed newstyle negotiation and option replies
//   transmission  request header decoding, simple and structured reply encoding
//   decoder       ByteQueue and the incremental ServerDecoder
//   client        client-side encoders and reply parsers (tests, tools)
// This barrel is the codec's one public face: `import * as nbd from
// './protocol.js'` inside the package, and the `nbd` namespace of
// @zsmalloc/workers/nbd. The wire helpers other than NbdProtocolError and
// readU64 stay internal to protocol/.

export * from './protocol/constants.js';
export { NbdProtocolError, readU64 } from './protocol/wire.js';
export * from './protocol/handshake.js';
export * from './protocol/transmission.js';
export * from './protocol/decoder.js';
export * from './protocol/client.js';
