/**
 * The BitTorrent half of bench/swarm.ts: the same file to the same peers over the same lab, with
 * programs nobody here wrote (Debian's aria2c and opentracker).
 *
 * Theory of operation
 * - The .torrent is written here (`makeTorrent`, a bencode writer of the few types a
 *   single-file torrent needs: integers, byte strings, dictionaries with sorted keys): `announce`
 *   is the tracker's URL, `info` holds `length`, `name`, `piece length` and the SHA-1 of each
 *   piece. The info hash is the SHA-1 of the encoded `info` dictionary.
 * - opentracker runs in the bridge namespace on the bridge's address, so tracker traffic never
 *   crosses a host's shaped uplink; it chroots to a directory of this run holding its whitelist
 *   (Debian's build serves only listed info hashes).
 * - The seed: aria2c in the seed's namespace, `--check-integrity` over the existing file, then
 *   seeding with no ratio or time limit. The run waits until a scrape of the tracker (from the
 *   seed's namespace) counts one complete peer, so the leechers find the seed at once.
 * - The leechers: one aria2c per peer namespace, all started together, `--seed-time=0` (each
 *   leaves the swarm when it completes), DHT and local peer discovery off, peer exchange on
 *   everywhere (the leechers learn of one another beyond the tracker's first answer). A peer's
 *   time is from the common start to its aria2c's exit; its file is checked by SHA-256.
 */
import { createHash } from 'node:crypto';
import { open, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sha256File, type LabHost, type Processes } from './netns-lab.js';
import type { PeerResult } from './swarm-result.js';

type Bencodable = number | string | Uint8Array | readonly Bencodable[] | BencodeDictionary;
interface BencodeDictionary {
  readonly [key: string]: Bencodable;
}

/** Bencoding: dictionary keys sorted by their bytes, strings as UTF-8. */
export function bencode(value: Bencodable): Buffer {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`bencode: ${value} is not an integer`);
    return Buffer.from(`i${value}e`);
  }
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
    return Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);
  }
  if (Array.isArray(value)) {
    return Buffer.concat([Buffer.from('l'), ...value.map(bencode), Buffer.from('e')]);
  }
  const dictionary = value as BencodeDictionary;
  const keys = Object.keys(dictionary).sort((a, b) =>
    Buffer.compare(Buffer.from(a), Buffer.from(b)),
  );
  return Buffer.concat([
    Buffer.from('d'),
    ...keys.flatMap((key) => [bencode(key), bencode(dictionary[key]!)]),
    Buffer.from('e'),
  ]);
}

/** A single-file .torrent for `path` (named `name`); returns its bytes and info hash. */
export async function makeTorrent(
  path: string,
  name: string,
  announce: string,
  pieceLengthBytes: number,
): Promise<{ torrent: Buffer; infoHash: Buffer }> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const hashes: Buffer[] = [];
    const piece = Buffer.alloc(pieceLengthBytes);
    for (let offset = 0; offset < size; offset += pieceLengthBytes) {
      const { bytesRead } = await file.read(piece, 0, pieceLengthBytes, offset);
      hashes.push(createHash('sha1').update(piece.subarray(0, bytesRead)).digest());
    }
    const info = {
      length: size,
      name,
      'piece length': pieceLengthBytes,
      pieces: Buffer.concat(hashes),
    };
    const infoHash = createHash('sha1').update(bencode(info)).digest();
    return { torrent: bencode({ announce, info }), infoHash };
  } finally {
    await file.close();
  }
}

/** aria2c switches every client of the swarm shares. */
const ARIA2_COMMON = [
  '--enable-dht=false',
  '--enable-dht6=false',
  '--bt-enable-lpd=false',
  '--enable-peer-exchange=true',
  '--file-allocation=none',
  '--listen-port=6881',
  '--console-log-level=warn',
  '--download-result=hide',
];

export interface BitTorrentSwarm {
  readonly processes: Processes;
  readonly seed: LabHost;
  readonly peers: readonly LabHost[];
  /** The bridge namespace and address (the tracker's place). */
  readonly trackerNs: string;
  readonly trackerAddress: string;
  /** The content, named `contentName` in `contentDir`. */
  readonly contentDir: string;
  readonly contentName: string;
  readonly sha256: string;
  readonly root: string;
  /** Where the leechers write (a directory of their own each). */
  readonly outputDir: string;
  readonly pieceLengthBytes: number;
  readonly say: (line: string) => void;
}

/**
 * Runs the swarm: tracker, seed, then every leecher at once. `measure` is called right before
 * the leechers start and again after the last one exited (the seed still running), so the
 * caller reads the links' counters around exactly the transfer.
 */
export async function runBitTorrent(
  swarm: BitTorrentSwarm,
  measure: (moment: 'start' | 'end') => void,
): Promise<{ peers: PeerResult[]; note: string }> {
  const { processes, say } = swarm;
  const announce = `http://${swarm.trackerAddress}:6969/announce`;
  const { torrent, infoHash } = await makeTorrent(
    join(swarm.contentDir, swarm.contentName),
    swarm.contentName,
    announce,
    swarm.pieceLengthBytes,
  );
  const torrentPath = join(swarm.root, 'content.torrent');
  await writeFile(torrentPath, torrent);
  const jail = join(swarm.root, 'opentracker');
  await mkdir(jail, { recursive: true });
  // Debian builds opentracker with a whitelist: only listed info hashes (hex, a line each).
  await writeFile(join(jail, 'whitelist'), `${infoHash.toString('hex')}\n`);
  const tracker = processes.spawn(
    swarm.trackerNs,
    'opentracker',
    ['-i', swarm.trackerAddress, '-p', '6969', '-P', '6969', '-d', jail, '-w', 'whitelist'],
    { log: join(swarm.root, 'opentracker.log') },
  );
  const seed = processes.spawn(
    swarm.seed.ns,
    'aria2c',
    [
      ...ARIA2_COMMON,
      '--check-integrity=true',
      '--seed-ratio=0.0',
      '--summary-interval=0',
      `--dir=${swarm.contentDir}`,
      torrentPath,
    ],
    { log: join(swarm.root, 'aria2c-seed.log') },
  );
  try {
    await waitForSeed(swarm, infoHash, () => seed.exitCode !== null || tracker.exitCode !== null);
    say(`bittorrent: opentracker on ${swarm.trackerAddress}, aria2c seeding (scrape: 1 complete)`);
    measure('start');
    const cpuSeconds: number[] = [];
    const started = performance.now();
    const peers = await Promise.all(
      swarm.peers.map(async (peer): Promise<PeerResult> => {
        const dir = join(swarm.outputDir, `bt-${peer.name}`);
        await mkdir(dir, { recursive: true });
        // Through bash, whose `times` prints its children's CPU time (user, then system).
        const run = await processes.run(peer.ns, 'bash', [
          '-c',
          'aria2c "$@"; code=$?; times >&2; exit $code',
          'aria2c',
          ...ARIA2_COMMON,
          '--seed-time=0',
          '--summary-interval=0',
          '--allow-overwrite=true',
          `--dir=${dir}`,
          torrentPath,
        ]);
        const seconds = (performance.now() - started) / 1000;
        cpuSeconds.push(childCpuSeconds(run.stderr));
        if (run.code !== 0) {
          return { name: peer.name, seconds, ok: false, error: run.stderr.trim() || run.stdout };
        }
        const sha256 = await sha256File(join(dir, swarm.contentName));
        return { name: peer.name, seconds, ok: sha256 === swarm.sha256, sha256 };
      }),
    );
    measure('end');
    return {
      peers,
      note:
        `aria2c ${ARIA2_COMMON.filter((flag) => flag.includes('peer-exchange')).join(' ')}, ` +
        `leechers --seed-time=0, pieces of ${swarm.pieceLengthBytes / 1024} KiB, opentracker; ` +
        `leechers' CPU seconds ${cpuSeconds.map((n) => n.toFixed(1)).join(' + ')}`,
    };
  } finally {
    await processes.stop(seed);
    await processes.stop(tracker);
  }
}

/** Polls the tracker's scrape (from the seed's namespace) until it counts a complete peer. */
async function waitForSeed(
  swarm: BitTorrentSwarm,
  infoHash: Buffer,
  gone: () => boolean,
): Promise<void> {
  const escaped = [...infoHash].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
  const url = `http://${swarm.trackerAddress}:6969/scrape?info_hash=${escaped}`;
  const script =
    'fetch(process.argv[1]).then(r=>r.text()).then(t=>console.log(t),()=>process.exit(3))';
  const deadline = performance.now() + 60_000;
  for (;;) {
    if (gone()) throw new Error(`aria2c or opentracker exited; logs in ${swarm.root} (--keep)`);
    const scrape = await swarm.processes.run(swarm.seed.ns, process.execPath, ['-e', script, url]);
    if (/8:completei([1-9]\d*)e/.test(scrape.stdout)) return;
    if (performance.now() > deadline) {
      throw new Error(`the tracker never counted the seed (last scrape: ${scrape.stdout.trim()})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** User + system seconds from bash's `times` line for children (`0m1.234s 0m0.567s`). */
function childCpuSeconds(stderr: string): number {
  const match = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
  if (match === null) return Number.NaN;
  return Number(match[1]) * 60 + Number(match[2]) + Number(match[3]) * 60 + Number(match[4]);
}
