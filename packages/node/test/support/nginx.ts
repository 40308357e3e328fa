/**
 * A real nginx (Debian's /usr/sbin/nginx) for tests: an origin nobody here wrote. The test
 * writes its own nginx.conf in a temp dir (`daemon off;`, pid, logs and temp paths inside it),
 * one `server` per configuration on free loopback ports, all serving one root directory.
 * `NGINX_MISSING` is a skip message when the binary is absent (CI installs the `nginx` package).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX_PATH = '/usr/sbin/nginx';

/** Why nginx tests are skipped, or false when nginx is installed. */
export const NGINX_MISSING: string | false = existsSync(NGINX_PATH)
  ? false
  : `${NGINX_PATH} is missing: install Debian's nginx package (apt-get install -y nginx) to run the tests against a real nginx`;

export interface NginxServer {
  /** `http://127.0.0.1:PORT` of each configuration, by name. */
  readonly urls: Readonly<Record<string, string>>;
  /** The directory nginx serves (world-readable: the workers may run as nobody). */
  readonly root: string;
  close(): Promise<void>;
}

/**
 * Starts nginx with one server block per entry of `servers` (its directives, e.g. `etag off;`).
 * Resolves once every port accepts connections.
 */
export async function startNginx(servers: Readonly<Record<string, string>>): Promise<NginxServer> {
  const dir = await mkdtemp(join(tmpdir(), 'peapod-nginx-'));
  const root = join(dir, 'www');
  await mkdir(root);
  await mkdir(join(dir, 'tmp'));
  await chmod(dir, 0o755);
  await chmod(root, 0o755);
  const ports: Record<string, number> = {};
  for (const name of Object.keys(servers)) ports[name] = await freeTcpPort();
  const blocks = Object.entries(servers)
    .map(
      ([name, directives]) =>
        `  server { listen 127.0.0.1:${ports[name]}; root ${root}; ${directives} }`,
    )
    .join('\n');
  const temp = join(dir, 'tmp');
  const conf = `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${temp}; proxy_temp_path ${temp}; fastcgi_temp_path ${temp};
  uwsgi_temp_path ${temp}; scgi_temp_path ${temp};
  types { application/octet-stream bin; }
  default_type application/octet-stream;
${blocks}
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(
    NGINX_PATH,
    ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (part: Buffer) => (stderr += part.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (const port of Object.values(ports)) {
    const deadline = performance.now() + 10_000;
    while (!(await accepts(port))) {
      if (child.exitCode !== null || performance.now() > deadline) {
        const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
        child.kill('SIGKILL');
        throw new Error(`nginx did not start: ${stderr}${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50)); // polling a port, not timing
    }
  }
  const urls: Record<string, string> = {};
  for (const [name, port] of Object.entries(ports)) urls[name] = `http://127.0.0.1:${port}`;
  return {
    urls,
    root,
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
