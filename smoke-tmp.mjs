import { ZramDevice } from '@zsmalloc/zram';
import { NbdServer, ZramDeviceBackend } from '@zsmalloc/workers/nbd/index';
const dev = ZramDevice.create({ disksize: 256 << 20, algorithm: 'lz4' });
const s = await NbdServer.start({ backend: new ZramDeviceBackend(dev), port: Number(process.env.PORT ?? 0), log: (m) => console.error(m), debug: true });
console.log(s.uri());
process.on('SIGTERM', async () => { await s.close(); console.error(dev.mmStat()); process.exit(0); });
