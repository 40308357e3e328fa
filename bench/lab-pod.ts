/**
 * A pod of real `peapod daemon` processes on the hosts of a netns lab (bench/netns-lab.ts), for
 * bench/swarm.ts and bench/cached-url.ts, set up as a user would with the command line.
 *
 * Theory of operation
 * - Each host gets its own data directory (PEAPOD_HOME) under the run's directory. The first
 *   host runs `peapod init --json` (-> a join code), every other `peapod join CODE`.
 * - One `peapod daemon --bind <the host's lab address>` per host namespace, on the default ports
 *   (each namespace has its own), so discovery's multicast leaves on the lab's link (the lab
 *   routes 224.0.0.0/4 there); logs (JSON lines) go to `peapod-<host>.log`.
 * - `start` resolves once every daemon lists all the others connected (`peapod peers --json`,
 *   polled every 200 ms, 60 s at most). `cli` runs a command in a host's namespace against its
 *   daemon; `stop` ends the daemons this pod started.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LabHost, Processes, RunResult } from './netns-lab.js';

/**
 * A command's JSON object: its whole output (`init --json` prints one object over several
 * lines), else its last line that parses as one (`get --json` after progress); or undefined.
 */
export function lastJson(text: string): Record<string, unknown> | undefined {
  for (const line of [text, ...text.trim().split('\n').reverse()]) {
    try {
      const value = JSON.parse(line) as unknown;
      if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
    } catch {
      // not JSON: a progress line or a message
    }
  }
  return undefined;
}

/** `run` itself when it exited 0; otherwise an error naming `what` with its output. */
export function mustSucceed(what: string, run: RunResult): RunResult {
  if (run.code !== 0) {
    throw new Error(`${what} exited ${run.code}: ${run.stderr.trim() || run.stdout.trim()}`);
  }
  return run;
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;

export class LabPod {
  private readonly daemons: ChildProcess[] = [];

  constructor(
    private readonly processes: Processes,
    readonly hosts: readonly LabHost[],
    /** packages/node/dist/src/cli.js (or a bench's `--cli`). */
    private readonly cliPath: string,
    readonly root: string,
  ) {}

  home(host: LabHost): string {
    return join(this.root, `peapod-${host.name}`);
  }

  private env(host: LabHost): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PEAPOD_HOME: this.home(host),
      PEAPOD_BIND_ADDRESS: host.address,
      PEAPOD_API_PORT: '8080',
    };
  }

  /** `peapod ARGS` as `host` (in its namespace unless `inNamespace` is false). */
  cli(host: LabHost, args: readonly string[], inNamespace = true): Promise<RunResult> {
    return this.processes.run(
      inNamespace ? host.ns : undefined,
      process.execPath,
      [this.cliPath, ...args],
      { env: this.env(host) },
    );
  }

  /** Creates the pod, starts every daemon (with `daemonFlags`), waits until all are linked. */
  async start(logLevel: string, daemonFlags: readonly string[] = []): Promise<number> {
    const [first, ...others] = this.hosts;
    const init = await this.cli(first!, ['init', '--json'], false);
    const joinCode = lastJson(mustSucceed('peapod init', init).stdout)?.['joinCode'];
    if (typeof joinCode !== 'string') throw new Error('peapod init --json printed no joinCode');
    for (const host of others) {
      mustSucceed(`peapod join (${host.name})`, await this.cli(host, ['join', joinCode], false));
    }
    const startedMs = performance.now();
    for (const host of this.hosts) {
      this.daemons.push(
        this.processes.spawn(
          host.ns,
          process.execPath,
          [
            this.cliPath,
            ...['daemon', '--bind', host.address, '--name', host.name],
            ...['--log-level', logLevel, '--log-format', 'json', ...daemonFlags],
          ],
          { env: this.env(host), log: join(this.root, `peapod-${host.name}.log`) },
        ),
      );
    }
    await Promise.all(this.hosts.map((host) => this.waitForLinks(host)));
    return (performance.now() - startedMs) / 1000;
  }

  /** How many of the daemons exited by themselves. */
  exited(): number {
    return this.daemons.filter((daemon) => daemon.exitCode !== null || daemon.signalCode !== null)
      .length;
  }

  /** CPU seconds (user + system) each daemon used so far, in the order of `hosts`. */
  cpuSeconds(): number[] {
    return this.daemons.map((daemon) => {
      try {
        // `ip netns exec` execs the command, so the child's pid is the daemon's.
        const stat = readFileSync(`/proc/${daemon.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
      } catch {
        return Number.NaN;
      }
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.daemons.splice(0).map((daemon) => this.processes.stop(daemon)));
  }

  /** Polls `peapod peers --json` on `host` until every other host is connected. */
  private async waitForLinks(host: LabHost): Promise<void> {
    const others = this.hosts.length - 1;
    const deadline = performance.now() + 60_000;
    let last = '';
    for (;;) {
      const peers = await this.cli(host, ['peers', '--json']);
      if (peers.code === 0) {
        const rows = (JSON.parse(peers.stdout) as { peers: Array<{ state: string }> }).peers;
        const connected = rows.filter((row) => row.state === 'connected').length;
        if (connected >= others) return;
        last = `${connected} connected`;
      } else {
        last = peers.stderr.trim();
      }
      if (this.exited() > 0)
        throw new Error(`a daemon exited; its log is in ${this.root} (--keep)`);
      if (performance.now() > deadline) {
        throw new Error(
          `${host.name}'s daemon never saw the ${others} others connected (${last}); logs in ` +
            `${this.root} with --keep`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
