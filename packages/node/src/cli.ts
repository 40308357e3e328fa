#!/usr/bin/env node
/**
 * `peapod`: the command line. Each command is a thin shell over a module that does the work:
 * data-dir.ts (identity, pod, settings), daemon.ts (the node), commands/get.ts (a download through
 * the daemon), commands/share.ts, fetch.ts and contents.ts (content by ID: share, fetch, ls,
 * rm), commands/peers.ts (the peer table), demo.ts (the whole story on one machine).
 * Errors print one line that says what to do next, and exit 1; usage errors exit 2; no daemon
 * (or a daemon that refuses) exits 3. Options may come before or after the arguments
 * (`peapod get -H "A: b" URL -o f`); a repeatable option takes one value per use (`-H` twice),
 * never the rest of the line. Each command's help ends with examples.
 */
import { Command, CommanderError, Option } from 'commander';
import { formatDeviceId, PeapodError } from '@peapod/core';
import { ApiError, ApiRefused, DaemonUnreachable, getPeers, type ApiTarget } from './api-client.js';
import { GET_EXIT_HELP, runGet, UsageError } from './commands/get.js';
import { renderPeers } from './commands/peers.js';
import { ContentIdError, runList, runRemove, runSetPublished } from './commands/contents.js';
import { FETCH_EXIT_HELP, runFetch } from './commands/fetch.js';
import { runShare } from './commands/share.js';
import { runCache } from './commands/cache.js';
import { registerTrackerCommand } from './commands/tracker.js';
import { LOG_FORMATS, type LogFormat } from './log-format-names.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DAEMON_RUN_FILE, type DaemonRunFile } from './daemon-run-file.js';
import { DataDir, DataDirFiles, parseHostPort, SETTINGS, type ConfigFlags } from './data-dir.js';
import { createPod, formatJoinCode, parseJoinCode, podId } from './pod.js';
import { createLimits, parseRate, parseSize } from './rate-limit.js';
import {
  GATEWAY_CACHE_DEFAULT_BYTES,
  GATEWAY_MEMORY_DEFAULT_BYTES,
  type GatewayConfig,
} from './gateway/gateway-service.js';
import { parseRoute } from './gateway/routes.js';
import { loadGatewayKeys } from './gateway/client-auth.js';

const program = new Command('peapod')
  .description(
    'PeaPod: devices that need the same bytes share the work of getting them.\n' +
      'Pool the internet links of your devices for one big download, every byte verified.',
  )
  .showHelpAfterError('(add --help to the command for its usage and examples)')
  // Usage errors read like every other error: `peapod: ...`.
  .configureOutput({
    outputError: (text, write) => write(`peapod: ${text.replace(/^error: /, '')}`),
  })
  .exitOverride() // usage errors exit 2 (below), not commander's 1
  .addHelpText(
    'after',
    `
Getting started (on each device):
  peapod init                  first device: creates its identity and a pod, prints a join code
  peapod join CODE             other devices: join that pod
  peapod daemon                run the node (peers on TCP 9000, discovery UDP 9001, API/proxy 8080)
  peapod get URL -o FILE       a pooled download through the daemon and its pod peers
  peapod share PATH            serve a file or directory to the pod; prints its peapod:// link
  peapod fetch LINK            fetch shared content from every pod member that holds it
  peapod demo                  all of it on this machine, no setup

Data directory: ~/.peapod (override with PEAPOD_HOME). Settings: \`peapod daemon --help\`.
Each command has its own help with examples: \`peapod get --help\`.

Exit status: 0 success, 1 failed (the message says why), 2 usage error, 3 no daemon answers
(or it refused), 130 interrupted.`,
  );

program
  .command('init')
  .description('create this device identity and a new pod; print its join code')
  .option('--force', 'replace an existing pod (devices in the old pod will no longer connect)')
  .option('--json', 'print a JSON object')
  .addHelpText('after', examples('peapod init', 'peapod init --json', 'peapod init --force'))
  .action(async (options: { force?: boolean; json?: boolean }) => {
    const dir = await DataDir.open();
    const identity = await dir.loadIdentity();
    const existing = await dir.readPodSecret();
    if (existing !== undefined && options.force !== true) {
      fail(
        `this device is already in pod ${podId(existing)}. Print its join code with ` +
          '`peapod code`, or start a new pod with `peapod init --force`.',
      );
    }
    const secret = createPod();
    await dir.writePodSecret(secret);
    const result = {
      deviceId: formatDeviceId(identity.deviceId),
      podId: podId(secret),
      joinCode: formatJoinCode(secret),
      dataDir: dir.path,
    };
    if (options.json === true) return printJson(result);
    console.log(`Device ID: ${result.deviceId}`);
    console.log(`Pod:       ${result.podId} (new)`);
    console.log(`\nOn each other device, run:\n\n  peapod join ${result.joinCode}\n`);
    console.log('Keep the code private: whoever has it can join the pod.');
  });

program
  .command('join')
  .argument('<code>', 'the join code printed by `peapod init` or `peapod code` on a pod member')
  .description('join the pod of another device')
  .option('--json', 'print a JSON object')
  .addHelpText(
    'after',
    examples('peapod join peapod1-...   (the code `peapod code` prints on a pod member)'),
  )
  .action(async (code: string, options: { json?: boolean }) => {
    const secret = parseJoinCode(code);
    const dir = await DataDir.open();
    const identity = await dir.loadIdentity();
    await dir.writePodSecret(secret);
    const result = { deviceId: formatDeviceId(identity.deviceId), podId: podId(secret) };
    if (options.json === true) return printJson(result);
    console.log(`Device ID: ${result.deviceId}`);
    console.log(`Joined pod ${result.podId}. Start the node with \`peapod daemon\`.`);
  });

program
  .command('code')
  .description("print this device's pod join code")
  .addHelpText('after', examples('peapod code     (then on the new device: peapod join CODE)'))
  .action(async () => {
    const secret = await requirePod(await DataDir.open());
    console.log(formatJoinCode(secret));
  });

program
  .command('id')
  .description("print this device's Device ID")
  .addHelpText('after', examples('peapod id'))
  .action(async () => {
    const identity = await (await DataDir.open()).loadIdentity();
    console.log(formatDeviceId(identity.deviceId));
  });

program
  .command('daemon')
  .description('run the PeaPod node until SIGINT/SIGTERM')
  .option('--peer-port <port>', 'TCP port for peer links (default 9000)')
  .option('--api-port <port>', 'HTTP port of the proxy and local API (default 8080)')
  .option('--discovery-port <port>', 'UDP port of discovery beacons (default 9001)')
  .option('--bind <address>', 'address to listen on and multicast from (default 127.0.0.1)')
  .option('--name <name>', 'device name shown to peers (default: host name)')
  .option('--max-upload <rate>', 'upload limit, e.g. 20Mbit, 2.5MB, 0 for none')
  .option('--max-download <rate>', 'download limit, e.g. 50Mbit, 6MB, 0 for none')
  .option('--limit-lan', 'apply the limits to LAN peers too (default: LAN peers are exempt)')
  .option('--origin-address <address>', 'source address for origin requests (default: any)')
  .option(
    '--allow-private-origins',
    'fetch for pod peers from loopback and private addresses too (default: public only)',
  )
  .option(
    '--stall-timeout <seconds>',
    'fail a download after this long without progress (default 60)',
  )
  .option('--store-budget <size>', 'disk the chunk store may use, e.g. 20GiB (default 20GiB)')
  .option(
    '--tracker <url>',
    'find peers beyond this LAN through this tracker, e.g. https://tracker.example.org (repeat for more)',
    collect,
  )
  .addOption(
    new Option(
      '--broadcast',
      'let trackers and gossip pass this address on, so strangers can dial this device',
    ).conflicts('silent'),
  )
  .addOption(
    new Option(
      '--silent',
      'never let this address be passed on (the default): this device dials out to peers, nobody is told where it is',
    ).conflicts('broadcast'),
  )
  .option(
    '--public-address <host>',
    'the address strangers dial when broadcasting (default: the one the tracker sees)',
  )
  .option(
    '--peer <host:port>',
    'a device beyond the pod to join the gossip through, e.g. 203.0.113.7:9000 (repeat for more)',
    collect,
  )
  .option(
    '--allow-private-peers',
    'dial gossip- and tracker-learnt addresses that are loopback or private too (default: public only)',
  )
  .option(
    '--gateway <host:port>',
    'run the caching gateway: endpoint mode on this port (e.g. 127.0.0.1:8081, loopback clients), and proxied GETs (http_proxy) through its cache',
  )
  .option(
    '--gateway-keys <file>',
    'serve endpoint-mode clients from any address, each request AWS SigV4-signed with a key of FILE ("ACCESS_KEY_ID SECRET" per line, chmod 600)',
  )
  .option(
    '--route <match=target>',
    'a gateway route: /prefix or host name = http(s)://origin[/base] or s3://bucket@http://endpoint[?region=R] (repeat for more)',
    collect,
  )
  .option('--cache-size <size>', 'disk the gateway cache may use, e.g. 50GiB (default 10GiB)')
  .option(
    '--cache-memory <size>',
    'memory for the hottest cached chunks, e.g. 2GiB (default 256MiB)',
  )
  .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
  .addOption(
    new Option('--log-format <format>', 'json, or pretty (default: pretty on a terminal)').choices(
      LOG_FORMATS,
    ),
  )
  .addOption(
    new Option('--test-corrupt-for-peers', 'TEST ONLY: corrupt what this node fetches for peers')
      .hideHelp()
      .default(false),
  )
  .addOption(
    new Option('--test-corrupt-served-chunks', 'TEST ONLY: corrupt every chunk this node serves')
      .hideHelp()
      .default(false),
  )
  .addHelpText('after', daemonHelp)
  .action(async (options: DaemonFlags) => {
    const dir = await DataDir.open();
    const secret = await requirePod(dir);
    const identity = await dir.loadIdentity();
    const flags: Record<string, string | string[]> = {};
    if (options.peerPort !== undefined) flags['peerPort'] = options.peerPort;
    if (options.apiPort !== undefined) flags['apiPort'] = options.apiPort;
    if (options.discoveryPort !== undefined) flags['discoveryPort'] = options.discoveryPort;
    if (options.bind !== undefined) flags['bindAddress'] = options.bind;
    if (options.name !== undefined) flags['deviceName'] = options.name;
    if (options.maxUpload !== undefined)
      flags['maxUploadBytesPerSecond'] = String(rateFlag('--max-upload', options.maxUpload));
    if (options.maxDownload !== undefined)
      flags['maxDownloadBytesPerSecond'] = String(rateFlag('--max-download', options.maxDownload));
    if (options.allowPrivateOrigins === true) flags['allowPrivateOrigins'] = 'true';
    if (options.stallTimeout !== undefined) flags['stallTimeout'] = options.stallTimeout;
    if (options.storeBudget !== undefined) flags['storeBudget'] = options.storeBudget;
    if (options.tracker !== undefined) flags['tracker'] = options.tracker;
    if (options.broadcast === true) flags['broadcast'] = 'true';
    if (options.silent === true) flags['broadcast'] = 'false';
    if (options.publicAddress !== undefined) flags['publicAddress'] = options.publicAddress;
    if (options.peer !== undefined) flags['peer'] = options.peer;
    if (options.allowPrivatePeers === true) flags['allowPrivatePeers'] = 'true';
    const { config } = await dir.loadConfig({ env: process.env, flags: flags as ConfigFlags });
    const gateway = gatewayFlags(options);
    // Loaded here, not at the top: every other command starts ~0.1 s sooner without them.
    const [{ Daemon }, { createLogger }, { installProcessGuard }, { stopOnSignals }] =
      await Promise.all([
        import('./daemon.js'),
        import('./log-format.js'),
        import('./process-guard.js'),
        import('./stop-on-signals.js'),
      ]);
    const logger = createLogger(options.logLevel, options.logFormat);
    installProcessGuard(logger);
    const daemon = new Daemon({
      identity: identity.keyPair,
      podSecret: secret,
      deviceName: config.deviceName,
      bindAddress: config.bindAddress,
      peerPort: config.peerPort,
      apiPort: config.apiPort,
      discoveryPort: config.discoveryPort,
      multicastInterface: config.bindAddress,
      originAddress: options.originAddress,
      allowPrivateOrigins: config.allowPrivateOrigins,
      limits: createLimits({
        maxUploadBytesPerSec: config.maxUploadBytesPerSecond,
        maxDownloadBytesPerSec: config.maxDownloadBytesPerSecond,
        limitLan: options.limitLan === true,
      }),
      logger,
      corruptForPeers: options.testCorruptForPeers,
      dataDir: dir.path,
      stallTimeoutMs: config.stallTimeout * 1000,
      storeBudgetBytes: config.storeBudget,
      corruptServedChunks: options.testCorruptServedChunks,
      gossip: {
        trackers: config.tracker,
        broadcast: config.broadcast,
        publicAddress: config.publicAddress,
        peers: config.peer.map((peer) => parseHostPort(peer)!), // checked by loadConfig
        allowPrivatePeers: config.allowPrivatePeers,
      },
      ...(gateway === undefined ? {} : { gateway }),
    });
    await daemon.start();
    logger.info({ podId: podId(secret), dataDir: dir.path }, 'ready');
    stopOnSignals(logger, () => daemon.stop());
  });

program
  .command('peers')
  .description(
    'show the pod, this device, the pod members the daemon has seen, and peers beyond the pod',
  )
  .option(
    '--json',
    'print JSON: {deviceId, deviceName, pod, peers: [...], refused: [...], gossip: {...}}',
  )
  .addHelpText(
    'after',
    `
Each device shows as its name and short Device ID (the first group of \`peapod id\`).
"Refused" lists devices of another pod that tried to connect (they joined with another code).

With gossip on (\`peapod daemon --tracker URL\`, \`--peer\` or \`--broadcast\`), "Beyond the pod"
lists the devices gossip found: SOURCE is where this daemon learnt of each (gossip, tracker,
cache = peers.db from an earlier run, link = it connected here), LAST HEARD when anything from
it last arrived, SCORE 0-1 (availability and speed), TRUST "stranger" unless it is in your pod.
ADDRESS is shown only for devices that broadcast it; a silent device's address is never passed
on, so nobody has it to show. The trackers' state follows.
${examples(
  'peapod peers',
  'peapod peers --json | jq \'.peers[] | select(.state == "connected")\'',
  "peapod peers --json | jq '.gossip.peers[] | select(.linked)'",
)}`,
  )
  .action(async (options: { json?: boolean }) => {
    const answer = await getPeers(await apiTarget());
    if (options.json === true) return printJson(answer);
    for (const line of renderPeers(answer)) console.log(line);
  });

program
  .command('get')
  .argument('<url>', 'http(s) URL of the object')
  .description(
    'download URL through the local daemon, pooled with pod peers when the origin allows',
  )
  .option('-o, --output <file>', 'output file, or - for stdout (default: the URL file name)')
  .option('--sha256 <hex>', 'expected SHA-256 of the whole object, verified end to end')
  .option(
    '-H, --header <line>',
    'request header for the origin, e.g. "Authorization: ..." (repeat for more)',
    (line: string, previous: string[] | undefined) => [...(previous ?? []), line],
  )
  .option('--no-pool', 'download from the origin alone')
  .option('--force', 'replace the output file if it exists')
  .option(
    '--strict',
    'pool only with a strong ETag or a known digest (--sha256, or one the origin states)',
  )
  .option('--json', 'print a JSON summary on stdout (on stderr with -o -)')
  .option('-q, --quiet', 'no progress line')
  .addHelpText(
    'after',
    `
Progress and notes go to stderr (with -o -, only when stderr is a terminal); the bytes go to the
file or, with -o -, to stdout. Ctrl-C keeps the part file: re-run the same command to resume.
${examples(
  'peapod get https://example.com/big.iso',
  'peapod get https://example.com/big.iso -o big.iso --sha256 3a7bd3e2...',
  'peapod get -H "Authorization: Bearer $TOKEN" https://example.com/private.tar -o private.tar',
  'peapod get https://example.com/big.tar -o - | tar x',
  'peapod get https://example.com/big.iso --json -q     (one JSON summary on stdout)',
)}

${GET_EXIT_HELP}`,
  )
  .action(async (url: string, options: GetFlags) => {
    // Every flag reaches runGet under its commander name: a new option is one `.option` line
    // above and one field in GetFlags and GetOptions.
    const code = await runGet(await apiTarget(), url, {
      ...options,
      json: options.json === true,
      quiet: options.quiet === true,
      force: options.force === true,
      strict: options.strict === true,
    });
    process.exitCode = code;
  });

program
  .command('share')
  .argument('<path>', 'a file or a directory')
  .description("serve a file or directory tree to the pod from this device's store")
  .option('--hidden', "include files and directories whose names start with '.'")
  .option(
    '--publish',
    'also serve it to strangers (peers of other pods found by gossip or a tracker), across restarts until `peapod unpublish`',
  )
  .option('--json', 'print JSON: {contentId, link, name, totalBytes, files, skipped, published}')
  .addHelpText(
    'after',
    `
Every member of your pod can see what you share (\`peapod ls\` on their side once fetched) and
fetch all of it: share nothing you would not hand to each of them. Strangers (devices of other
pods, found by gossip or a tracker) are served only what you share with --publish (or publish
later with \`peapod publish ID\`), and a daemon that broadcasts announces it to them; the store
keeps that through restarts until \`peapod unpublish ID\`. Sharing a published content again
without --publish leaves it published. The daemon's own data directory, and any directory
holding it, is refused.

The daemon hashes the files once and serves them where they are: a chunk that lies inside one
file is read from that file, and only the chunks that span two files of a tree (at most one per
file boundary, 4 MiB each by default) are copied into the store. The content stays pinned in
the store until \`peapod rm\`. Names starting with '.' (.git, .env, .ssh) are skipped unless
--hidden is given, as are symbolic links and special files (each is named on stderr). A file
changed after sharing is detected when it is read and never served; share it again for its new
content ID.
${examples(
  'peapod share ~/Videos/talk.mp4',
  'peapod share ./photos            (the tree; fetch writes it as photos/)',
  'peapod share ./talk.mp4 --publish (strangers may fetch it too)',
  'peapod share ./photos --json | jq -r .link',
)}`,
  )
  .action(
    async (path: string, options: { json?: boolean; hidden?: boolean; publish?: boolean }) => {
      process.exitCode = await runShare(await apiTarget(), path, {
        json: options.json === true,
        hidden: options.hidden === true,
        publish: options.publish === true,
      });
    },
  );

program
  .command('fetch')
  .argument('<id>', 'a peapod:// link or a 64-hex-digit content ID')
  .description('fetch shared content from every pod member that holds any of it')
  .option(
    '-o, --output <path>',
    "the file (a shared file) or the directory (a tree); default: the content's own name, which must not exist yet",
  )
  .option(
    '--only <glob>',
    'fetch only files matching GLOB, relative to the tree root; * within a directory, ** across (repeat for more)',
    (glob: string, previous: string[] | undefined) => [...(previous ?? []), glob],
  )
  .option('--force', 'replace files that exist')
  .option('--json', 'print a JSON summary on stdout')
  .option('-q, --quiet', 'no progress line')
  .addHelpText(
    'after',
    `
Every chunk is verified against the content ID before it is written. Progress goes to stderr.
Without -o the output is the content's own name in this directory, printed before anything is
written; it must not exist yet and must not start with '.', since the sharer chose it. Writing
into an existing directory takes an explicit -o DIR (and existing files there --force).
Ctrl-C keeps what was verified in the daemon's store: re-run the same command to resume.
${examples(
  "peapod fetch 'peapod://3a7bd3e2...?dn=talk.mp4'",
  'peapod fetch 3a7bd3e2... -o talk.mp4',
  "peapod fetch 'peapod://9c1f...?dn=photos' --only '2024/**' --only '*.txt'",
  'peapod fetch 3a7bd3e2... --json -q     (one JSON summary on stdout)',
)}

${FETCH_EXIT_HELP}`,
  )
  .action(async (id: string, options: FetchFlags) => {
    process.exitCode = await runFetch(await apiTarget(), id, {
      output: options.output,
      only: options.only,
      force: options.force === true,
      json: options.json === true,
      quiet: options.quiet === true,
    });
  });

program
  .command('ls')
  .description("list the contents in this device's store")
  .option('--json', 'print JSON: {contents: [...]}')
  .addHelpText(
    'after',
    `
Columns: short ID (any unique start of it works for \`peapod rm\` and \`peapod unpublish\`),
name, size, how much of it is held, pinned (what you shared is kept until you remove it),
published (strangers are served it: \`peapod share --publish\`), and where it came from. On a
terminal, long names and origins are cut to fit its width; --json has them whole.
${examples('peapod ls', "peapod ls --json | jq '.contents[] | select(.complete)'")}`,
  )
  .action(async (options: { json?: boolean }) => {
    await runList(await apiTarget(), { json: options.json === true });
  });

const cache = program
  .command('cache')
  .description('the gateway cache of a daemon started with --gateway: stats, ls, evict');
cache
  .command('stats')
  .description('size, hits and misses, bytes from origin and cache, the back-to-origin ratio')
  .option('--json', 'print JSON: {running, stats}')
  .action(async (options: { json?: boolean }) => {
    await runCache(await apiTarget(), 'stats', { json: options.json === true });
  });
cache
  .command('ls')
  .description('the cached objects: size, hits, private, last used, key (the upstream URL)')
  .option('--json', 'print JSON: {running, stats, objects: [...]}')
  .action(async (options: { json?: boolean }) => {
    await runCache(await apiTarget(), 'ls', { json: options.json === true });
  });
cache
  .command('evict')
  .argument(
    '[prefix]',
    'evict the objects whose key (upstream URL) starts with this; all without it',
  )
  .description('drop cached objects (the next request fetches them from the origin again)')
  .option('--json', 'print JSON: {evicted}')
  .action(async (prefix: string | undefined, options: { json?: boolean }) => {
    await runCache(await apiTarget(), 'evict', {
      json: options.json === true,
      ...(prefix === undefined ? {} : { prefix }),
    });
  });

program
  .command('rm')
  .argument('<id>', 'a content ID, or a unique start of one (`peapod ls` shows them)')
  .description('remove a content from the store; the pod is told this device no longer has it')
  .option('--json', 'print JSON: {contentId, removed}')
  .addHelpText(
    'after',
    `
Removing a shared content never deletes your files: only the store forgets them.
${examples('peapod rm 3a7bd3e2c1f0', 'peapod rm 3a7b --json')}`,
  )
  .action(async (id: string, options: { json?: boolean }) => {
    process.exitCode = await runRemove(await apiTarget(), id, { json: options.json === true });
  });

for (const published of [true, false]) {
  const name = published ? 'publish' : 'unpublish';
  program
    .command(name)
    .argument('<id>', 'a content ID, or a unique start of one (`peapod ls` shows them)')
    .description(
      published
        ? 'serve a stored content to strangers too (devices of other pods), across restarts'
        : 'stop serving a content to strangers at once; the pod is still served it',
    )
    .option('--json', 'print JSON: {contentId, found, published}')
    .addHelpText(
      'after',
      published
        ? `
Strangers (devices of other pods, found by gossip or a tracker) may then fetch it by its ID,
and a daemon that broadcasts announces it to them. The store keeps this through daemon
restarts, until \`peapod unpublish ID\`. \`peapod share PATH --publish\` does the same while
sharing. Your pod is served every content whatever this says.
${examples('peapod publish 3a7bd3e2c1f0', 'peapod publish 3a7b --json')}`
        : `
From the answer on, strangers asking for it get "not found", as for a content nobody holds, and
a broadcasting daemon announces it no longer held here; the store keeps this through restarts.
Pod members are still served it (\`peapod rm\` stops that).
${examples('peapod unpublish 3a7bd3e2c1f0', 'peapod unpublish 3a7b --json')}`,
    )
    .action(async (id: string, options: { json?: boolean }) => {
      process.exitCode = await runSetPublished(await apiTarget(), id, published, {
        json: options.json === true,
      });
    });
}

program
  .command('demo')
  .description(
    'the pooled download on one machine: a rate-limited origin, 4 daemons, alone vs pooled',
  )
  .option('--size <size>', 'object size', '256MiB')
  .option('--rate <rate>', "each device's internet link", '50Mbit')
  .option('--daemons <n>', 'number of devices', '4')
  .option('--json', 'print a JSON summary')
  .addHelpText(
    'after',
    examples('peapod demo', 'peapod demo --size 64MiB --rate 20Mbit --daemons 3'),
  )
  .action(async (options: { size: string; rate: string; daemons: string; json?: boolean }) => {
    const size = parseSize(options.size);
    if (size === undefined)
      fail(`--size: cannot read ${JSON.stringify(options.size)} (try 256MiB)`);
    const daemons = Number(options.daemons);
    if (!Number.isInteger(daemons) || daemons < 1 || daemons > 16) fail('--daemons: 1 to 16');
    const { runDemo } = await import('./demo.js');
    process.exitCode = await runDemo({
      sizeBytes: size,
      rateBytesPerSec: rateFlag('--rate', options.rate),
      daemons,
      json: options.json === true,
    });
  });

registerTrackerCommand(program);

/** The gateway's flags, checked (a usage error names the flag), or undefined without `--gateway`. */
function gatewayFlags(options: DaemonFlags): GatewayConfig | undefined {
  if (options.gateway === undefined) {
    if (
      options.route !== undefined ||
      options.cacheSize !== undefined ||
      options.cacheMemory !== undefined ||
      options.gatewayKeys !== undefined
    )
      fail('--route, --cache-size, --cache-memory and --gateway-keys need --gateway HOST:PORT');
    return undefined;
  }
  const at = parseHostPort(options.gateway);
  if (at === undefined)
    fail(`--gateway: "${options.gateway}" is not HOST:PORT, e.g. 127.0.0.1:8081`);
  const routes = (options.route ?? []).map((spec) => {
    try {
      return parseRoute(spec);
    } catch (error) {
      return fail(`--route: ${(error as Error).message}`);
    }
  });
  const cacheBytes =
    options.cacheSize === undefined ? GATEWAY_CACHE_DEFAULT_BYTES : parseSize(options.cacheSize);
  if (cacheBytes === undefined || cacheBytes <= 0)
    fail(`--cache-size: "${options.cacheSize}" is not a size, e.g. 50GiB`);
  const memoryBytes =
    options.cacheMemory === undefined
      ? GATEWAY_MEMORY_DEFAULT_BYTES
      : parseSize(options.cacheMemory);
  if (memoryBytes === undefined || memoryBytes <= 0)
    fail(`--cache-memory: "${options.cacheMemory}" is not a size, e.g. 2GiB`);
  let clientKeys: Map<string, string> | undefined;
  if (options.gatewayKeys !== undefined) {
    try {
      clientKeys = loadGatewayKeys(options.gatewayKeys);
    } catch (error) {
      return fail(`--gateway-keys: ${(error as Error).message}`);
    }
  }
  return {
    host: at.host,
    port: at.port,
    routes,
    cacheBytes,
    memoryBytes,
    ...(clientKeys === undefined ? {} : { clientKeys }),
  };
}

interface DaemonFlags {
  gatewayKeys?: string;
  peerPort?: string;
  apiPort?: string;
  discoveryPort?: string;
  bind?: string;
  name?: string;
  maxUpload?: string;
  maxDownload?: string;
  limitLan?: boolean;
  originAddress?: string;
  allowPrivateOrigins?: boolean;
  allowPrivatePeers?: boolean;
  stallTimeout?: string;
  storeBudget?: string;
  tracker?: string[];
  broadcast?: boolean;
  silent?: boolean;
  publicAddress?: string;
  peer?: string[];
  gateway?: string;
  route?: string[];
  cacheSize?: string;
  cacheMemory?: string;
  logLevel: string;
  logFormat?: LogFormat;
  testCorruptForPeers: boolean;
  testCorruptServedChunks: boolean;
}

interface FetchFlags {
  output?: string;
  only?: string[];
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
}

interface GetFlags {
  output?: string;
  sha256?: string;
  header?: string[];
  pool: boolean;
  strict?: boolean;
  json?: boolean;
  quiet?: boolean;
  force?: boolean;
}

/** A repeatable option's values, one per use. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** An "Examples:" help section. */
function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}`;
}

/** `peapod daemon --help`: the environment variables and config.json keys (data-dir.ts). */
function daemonHelp(): string {
  const names = Object.keys(SETTINGS) as (keyof typeof SETTINGS)[];
  const width = Math.max(...names.map((name) => SETTINGS[name].env.length));
  return `
Settings, each from (later wins): built-in default < config.json < environment < flag.
  Environment variable${' '.repeat(Math.max(1, width - 19))} config.json key
${names.map((name) => `  ${SETTINGS[name].env.padEnd(width)}  ${name}`).join('\n')}
  PEAPOD_HOME${' '.repeat(width - 10)} the data directory (default ~/.peapod)

The data directory's ${DataDirFiles.config} holds any settings you choose; PeaPod reads it and never
writes it.
Example: {"deviceName": "laptop", "maxUploadBytesPerSecond": 2500000}
Logs go to stdout: readable lines on a terminal, JSON lines otherwise (--log-format).

Beyond one LAN (docs/guide.md): with --tracker, --peer or --broadcast this device also meets
strangers, devices outside its pod, through gossip. Strangers can fetch only what they name by
content ID (every chunk checked against it) and never use this device's internet link. Silent
(the default) means strangers learn that this device exists but never its address; --broadcast
lets trackers and gossip pass the address on, so others can dial it (a device that should
help newcomers join, with a reachable port). PEAPOD_TRACKER and PEAPOD_PEER take
comma-separated lists; in config.json, "tracker" and "peer" take a string or a list.
${examples(
  'peapod daemon',
  'peapod daemon --name laptop --max-upload 20Mbit',
  'PEAPOD_API_PORT=8081 peapod daemon --log-format json',
  'peapod daemon --tracker https://tracker.example.org            (silent: dial out only)',
  'peapod daemon --tracker https://tracker.example.org --broadcast --bind 0.0.0.0',
  'peapod daemon --peer 203.0.113.7:9000      (join through a device you know, no tracker)',
)}`;
}

function rateFlag(flag: string, text: string): number {
  if (text.trim() === '0') return 0;
  const rate = parseRate(text);
  if (rate === undefined) fail(`${flag}: cannot read ${JSON.stringify(text)} (try 50Mbit or 6MB)`);
  return Math.round(rate);
}

async function requirePod(dir: DataDir): Promise<Uint8Array> {
  const secret = await dir.readPodSecret();
  if (secret === undefined) {
    fail('this device is in no pod yet: run `peapod init` (new pod) or `peapod join CODE`.');
  }
  return secret;
}

/** The running daemon's API: from its daemon.json when that process is alive, else config. */
async function apiTarget(): Promise<ApiTarget> {
  const dir = await DataDir.open();
  const apiKey = await dir.loadApiKey(); // the daemon's own key: same data directory, same file
  try {
    const run = JSON.parse(
      await readFile(join(dir.path, DAEMON_RUN_FILE), 'utf8'),
    ) as Partial<DaemonRunFile>;
    if (typeof run.apiHost === 'string' && Number.isInteger(run.apiPort) && isAlive(run.pid)) {
      return { host: run.apiHost, port: run.apiPort!, apiKey };
    }
  } catch {
    // no daemon.json: fall back to the configured address
  }
  const { config } = await dir.loadConfig({ env: process.env });
  return { host: config.bindAddress, port: config.apiPort, apiKey };
}

function isAlive(pid: unknown): boolean {
  if (!Number.isInteger(pid)) return false;
  try {
    process.kill(pid as number, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

function fail(message: string): never {
  throw new PeapodError('PEAPOD_ERR_INVALID_ARGUMENT', message);
}

program.parseAsync().catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander already printed the message (or the help); help and --version are success.
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`peapod: ${message}\n`);
  if (error instanceof UsageError || error instanceof ContentIdError) {
    const command =
      process.argv[2] === 'fetch' || process.argv[2] === 'rm' ? process.argv[2] : 'get';
    process.stderr.write(`(run \`peapod ${command} --help\` for usage)\n`);
    process.exit(2);
  }
  const noDaemon =
    error instanceof DaemonUnreachable || error instanceof ApiError || error instanceof ApiRefused;
  process.exit(noDaemon ? 3 : 1);
});
