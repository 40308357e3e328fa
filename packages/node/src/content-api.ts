/**
 * The local API's content routes (BRIEF interface F), behind the same key as every route
 * (api-router.ts checks it before it hands a request here):
 *
 * - `POST /api/share {path, hidden?, publish?}`: walk and hash the file or tree (share-scan.ts;
 *   names starting with '.' only with `hidden`; the data directory and any tree holding it
 *   refused), record it in the store pinned, its chunks referenced in the user's files, with
 *   `publish` record it published too, and tell the core it holds all of it
 *   (`content-available`, so pod members' fetches can use it at once; `published: true` when
 *   the store says so, so strangers are served it). Answers `{contentId, link, name,
 *   totalBytes, files, skipped, published}`; a failure's sentence keeps
 *   the walk's notes. A client that goes away (Ctrl-C) aborts the walk, the hash pass and the
 *   store step, and a content new to the store is removed again.
 * - `POST /api/fetch {id, output | directory, name?, only?, force?}`: one `ContentJob`
 *   (content-job.ts) into a `TreeSink` (tree-sink.ts); its events stream as NDJSON like
 *   `/api/get`'s, each source named. The manifest comes from the store, or from the pod
 *   (`manifestFromPod`, which records it, origin `fetched`, unpinned, before any chunk of it
 *   is stored); while the pod is asked the stream has begun with a `waiting` event, and a
 *   refusal after it is the stream's `error` event (before it, a 409). With `directory` (no
 *   `-o`) the default name, which the sharer chose, must not exist and must not start with a
 *   dot. The output is claimed (no two jobs on one target) and checked before the download
 *   starts. `--only` globs pick files (fetch-select.ts), and `done` then counts the files'
 *   bytes. A client that goes away cancels its job.
 * - `GET /api/contents`: the store's rows without their manifests, each with a name.
 * - `PATCH /api/contents/<hex> {published}`: records the flag in the store first, then tells
 *   the core (`content-available` with `published`), so from the answer on strangers are
 *   served it, or get `notFound`; the daemon hands the store's flag to the core again at
 *   every start (daemon.ts).
 * - `DELETE /api/contents/<hex>`: removes the content from the store (a shared content's
 *   files are the user's and stay; only the index forgets them) and tells the core
 *   (`content-removed`: CHUNK_REMOVE to every link). Running fetches of it fail.
 * A failure of the store to keep a chunk (`failContent`, from io-adapters.ts) fails the
 * running fetches of that content with the store's sentence.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { fromHex, toHex, type CoreInput, type CryptoProvider, type Manifest } from '@peapod/core';
import type { Logger } from 'pino';
import type { ContentRow, ContentUpdate, FetchRequest, ShareRequest } from './api-client.js';
import {
  parseContentUpdate,
  parseFetchRequest,
  parseShareRequest,
  readBody,
  sendJson,
} from './api-request.js';
import { contentLink } from './content-link.js';
import { ContentJob, type ContentJobEvent } from './content-job.js';
import { selectFiles, treeRoot, type Selection } from './fetch-select.js';
import type { JobFactory } from './job-factory.js';
import type { OutputClaim, OutputClaims } from './output-claims.js';
import type { ManifestAnswer } from './manifest-probe.js';
import type { PeerBook } from './peer-book.js';
import { OutputError } from './output-errors.js';
import { escalateIfInvariant } from './process-guard.js';
import { hashTree, scanTree, shareIntoStore } from './share-scan.js';
import { StoreFullError, type ChunkStoreApi, type StoredContent } from './store/store-api.js';
import {
  chunksInFiles,
  defaultOutputName,
  targetsOf,
  TreeSink,
  type TreeLayout,
} from './tree-sink.js';

export interface ContentApiOptions {
  /** The daemon's store; undefined until it is open (or without a data directory). */
  readonly store: () => ChunkStoreApi | undefined;
  readonly crypto: CryptoProvider;
  /** The host's `input`. */
  readonly feed: (input: CoreInput) => void;
  readonly jobs: JobFactory;
  readonly peers: PeerBook;
  readonly deviceIdHex: string;
  readonly outputClaims: OutputClaims;
  /**
   * The manifest of a content the store does not know yet, from the pod (manifest-probe.ts),
   * recorded in the store (origin `fetched`) as it arrives.
   */
  readonly manifestFromPod: (contentId: Uint8Array) => Promise<ManifestAnswer>;
  readonly logger: Logger;
  /** The daemon's data directory: never shared, nor any tree that holds it. */
  readonly dataDir?: string | undefined;
  /** Resolves once the chunk writes started so far have settled (io-adapters.ts). */
  readonly storeWritesSettled?: () => Promise<unknown>;
}

const NO_STORE = 'this daemon runs without a data directory, so it has no chunk store';

export class ContentApi {
  /** Running fetches by content ID (hex). */
  private readonly running = new Map<string, Set<ContentJob>>();

  constructor(private readonly options: ContentApiOptions) {}

  /** `POST /api/share`. */
  async share(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let request: ShareRequest;
    try {
      request = parseShareRequest(await readBody(req));
    } catch (error) {
      sendJson(res, 400, { error: (error as Error).message });
      return;
    }
    const store = this.options.store();
    if (store === undefined) return sendJson(res, 503, { error: NO_STORE });
    const { crypto, feed, logger, dataDir } = this.options;
    // A client that goes away (Ctrl-C) stops the walk and the hash pass; nothing stays pinned.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const signal = abort.signal;
    let answer;
    let notes: readonly string[] = [];
    try {
      const tree = await scanTree(request.path, {
        hidden: request.hidden === true,
        dataDir,
        signal,
      });
      notes = tree.notes;
      logger.info({ path: tree.root, files: tree.files.length }, 'share: hashing');
      const manifest = await hashTree(crypto, tree, undefined, signal);
      await shareIntoStore(crypto, store, tree, manifest, signal);
      if (request.publish === true) store.setPublished(manifest.contentId, true);
      const published = store.isPublished(manifest.contentId);
      feed({
        type: 'content-available',
        nowMs: performance.now(),
        manifest,
        ...(published ? { published } : {}),
      });
      const contentId = toHex(manifest.contentId);
      answer = {
        contentId,
        link: contentLink(contentId, tree.name),
        name: tree.name,
        totalBytes: manifest.totalBytes,
        files: tree.files.length,
        skipped: tree.notes,
        published,
      };
      logger.info({ contentId, path: tree.root, files: tree.files.length }, 'content shared');
    } catch (error) {
      if (signal.aborted) {
        logger.info({ path: request.path }, 'share stopped: the client went away');
        return;
      }
      const status = error instanceof StoreFullError ? 507 : 409;
      sendJson(res, status, { error: withNotes((error as Error).message, notes), skipped: notes });
      return;
    }
    sendJson(res, 200, answer);
  }

  /** `POST /api/fetch`. */
  async fetch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let request: FetchRequest;
    try {
      request = parseFetchRequest(await readBody(req));
    } catch (error) {
      sendJson(res, 400, { error: (error as Error).message });
      return;
    }
    const store = this.options.store();
    if (store === undefined) return sendJson(res, 503, { error: NO_STORE });
    const contentId = fromHex(request.id)!;
    let manifest = store.manifest(contentId);
    if (manifest === undefined) {
      // Asking the pod can take the stall timeout: the stream starts now and says so, and a
      // refusal from here on is its `error` event.
      const connected = this.options.peers.rows().filter((p) => p.state === 'connected').length;
      const members = connected === 1 ? '1 member' : `${connected} members`;
      const message = `asking the pod for the manifest (${members} connected)`;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'waiting', message })}\n`);
      const answer = await this.options.manifestFromPod(contentId);
      if (!answer.ok) return refuseFetch(res, answer.message);
      manifest = answer.manifest;
      if (res.destroyed) return; // the client left while the pod was asked: nobody waits
    }
    let selection: Selection | undefined;
    let claim: OutputClaim | undefined;
    let sink: TreeSink;
    let output: string;
    let layout: TreeLayout;
    try {
      output = request.output ?? (await defaultOutput(manifest, request));
      if (request.only !== undefined) selection = selectFiles(manifest, request.only);
      layout = targetsOf(manifest, output);
      claim = await this.options.outputClaims.claim(output);
      sink = await TreeSink.open(layout, {
        force: request.force === true,
        ...(selection === undefined ? {} : { selected: selection.files }),
      });
    } catch (error) {
      claim?.release();
      refuseFetch(res, (error as Error).message);
      return;
    }
    try {
      await this.runFetch(request.id, manifest, selection, sink, res, output, layout);
    } finally {
      claim.release();
    }
  }

  private async runFetch(
    hex: string,
    manifest: Manifest,
    selection: Selection | undefined,
    sink: TreeSink,
    res: ServerResponse,
    output: string,
    layout: TreeLayout,
  ): Promise<void> {
    const job = new ContentJob(this.options.jobs, {
      contentId: manifest.contentId,
      manifest,
      ...(selection === undefined ? {} : { chunks: selection.chunks }),
      sink,
    });
    const running = this.running.get(hex) ?? new Set<ContentJob>();
    running.add(job);
    this.running.set(hex, running);
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // With --only, `done` says the bytes of the files written, not of the chunks fetched
    // (a chunk also holds bytes of unselected neighbours).
    const filesBytes =
      selection === undefined
        ? undefined
        : selection.files.reduce((sum, index) => sum + manifest.files![index]!.sizeBytes, 0);
    let done = false;
    job.on('event', (event) => {
      if (event.type === 'done') done = true;
      const labelled =
        event.type === 'start'
          ? { ...event, output }
          : event.type === 'done' && filesBytes !== undefined
            ? { ...this.labelled(event), totalBytes: filesBytes }
            : this.labelled(event);
      if (!res.writableEnded) res.write(`${JSON.stringify(labelled)}\n`);
    });
    res.on('close', () => {
      if (!res.writableFinished) void job.cancel();
    });
    try {
      await job.run();
      if (done) await this.referenceOutput(manifest, layout, selection);
    } finally {
      running.delete(job);
      if (running.size === 0) this.running.delete(hex);
      this.options.jobs.forget(job);
      if (!res.writableEnded) res.end();
    }
  }

  /**
   * A committed fetch's chunks now lie in its output files: the store references them there
   * (every read still verified) and frees its chunk files, so the content is not kept twice.
   * A failure only costs that disk: it is logged.
   */
  private async referenceOutput(
    manifest: Manifest,
    layout: TreeLayout,
    selection?: Selection,
  ): Promise<void> {
    const written = selection?.files ?? layout.targets.map((_, index) => index);
    // A chunk file still being written would otherwise be indexed again after this.
    await this.options.storeWritesSettled?.();
    try {
      this.options
        .store()
        ?.referenceChunks(manifest.contentId, chunksInFiles(manifest, layout, written));
    } catch (error) {
      escalateIfInvariant(error);
      this.options.logger.warn(
        { contentId: toHex(manifest.contentId), error: String(error) },
        'could not reference a fetched content in its output; its chunk files stay',
      );
    }
  }

  /** `GET /api/contents`. */
  contents(res: ServerResponse): void {
    const store = this.options.store();
    if (store === undefined) return sendJson(res, 503, { error: NO_STORE });
    const contents: ContentRow[] = store
      .list()
      .map((row) => withoutManifest(row, store.heldIndices(row.manifest.contentId)));
    sendJson(res, 200, { contents });
  }

  /** `PATCH /api/contents/<hex>`. */
  async update(req: IncomingMessage, res: ServerResponse, hex: string): Promise<void> {
    let update: ContentUpdate;
    try {
      update = parseContentUpdate(await readBody(req));
    } catch (error) {
      sendJson(res, 400, { error: (error as Error).message });
      return;
    }
    const store = this.options.store();
    if (store === undefined) return sendJson(res, 503, { error: NO_STORE });
    const contentId = fromHex(hex)!;
    const manifest = store.manifest(contentId);
    try {
      if (manifest === undefined || !store.setPublished(contentId, update.published)) {
        sendJson(res, 404, { error: `the store holds no content ${hex.slice(0, 12)}…` });
        return;
      }
    } catch (error) {
      if (!(error instanceof StoreFullError)) throw error;
      return sendJson(res, 507, { error: error.message });
    }
    // The held chunks go along (no list when all are held), as at start-up (daemon.ts).
    const held = store.heldIndices(contentId);
    this.options.feed({
      type: 'content-available',
      nowMs: performance.now(),
      manifest,
      ...(held.length === manifest.chunkHashes.length ? {} : { chunkIndices: held }),
      published: update.published,
    });
    this.options.logger.info(
      { contentId: hex },
      update.published ? 'content published' : 'content unpublished',
    );
    sendJson(res, 200, { contentId: hex, published: update.published });
  }

  /** `DELETE /api/contents/<hex>`. */
  async remove(res: ServerResponse, hex: string): Promise<void> {
    const store = this.options.store();
    if (store === undefined) return sendJson(res, 503, { error: NO_STORE });
    const contentId = fromHex(hex)!;
    for (const job of this.running.get(hex) ?? []) {
      job.fail('the content was removed from the store (`peapod rm`) during the fetch');
    }
    const removed = await store.remove(contentId);
    if (!removed) {
      sendJson(res, 404, { removed, error: `the store holds no content ${hex.slice(0, 12)}…` });
      return;
    }
    this.options.feed({ type: 'content-removed', nowMs: performance.now(), contentId });
    this.options.logger.info({ contentId: hex }, 'content removed');
    sendJson(res, 200, { removed });
  }

  /** The store could not keep a chunk of `contentId`: its running fetches fail. */
  failContent(contentId: Uint8Array, message: string): void {
    for (const job of this.running.get(toHex(contentId)) ?? []) job.fail(message);
  }

  /** Progress and done name each source; Device IDs in an error become `name (SHORTID)`. */
  private labelled(event: ContentJobEvent): ContentJobEvent {
    const { peers, deviceIdHex } = this.options;
    if (event.type === 'error') return { ...event, message: peers.nameDevices(event.message) };
    if (event.type === 'start' || event.type === 'waiting') return event;
    const sourceNames: Record<string, string> = {};
    for (const key of Object.keys(event.bySource)) {
      sourceNames[key] = peers.label(key === 'self' ? deviceIdHex : key);
    }
    return { ...event, sourceNames };
  }
}

/**
 * The output without `-o`: the content's own name in the caller's directory. The sharer chose
 * that name, so it may not exist yet (no merging into, or replacing, what is there: only an
 * explicit `-o` does that) and may not start with a dot (`.config`, `.bash_login`).
 */
async function defaultOutput(manifest: Manifest, request: FetchRequest): Promise<string> {
  const name = nameFor(manifest, request.id, request.name);
  const output = join(request.directory!, name);
  if (name.startsWith('.')) {
    throw new OutputError(
      `the content's name ${JSON.stringify(name)} starts with a dot (a hidden file or directory); name the output yourself with -o NAME`,
    );
  }
  const exists = await lstat(output).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );
  if (exists) {
    throw new OutputError(
      `${output} exists; fetch writes into an existing file or directory only when you name it with -o (add --force to replace files)`,
    );
  }
  return output;
}

/** A fetch refused: 409 with the sentence, or its `error` event once the stream has begun. */
function refuseFetch(res: ServerResponse, message: string): void {
  if (!res.headersSent) return sendJson(res, 409, { error: message });
  res.end(`${JSON.stringify({ type: 'error', message })}\n`);
}

/** A failed share's sentence, followed by what its walk skipped (the first few). */
function withNotes(message: string, notes: readonly string[]): string {
  if (notes.length === 0 || message.includes(notes[0]!)) return message;
  const more = notes.length > 5 ? `; and ${notes.length - 5} more` : '';
  return `${message} (the walk also skipped: ${notes.slice(0, 5).join('; ')}${more})`;
}

/** The default output name (a link's name is used only when the manifest names nothing). */
function nameFor(manifest: Manifest, hex: string, linkName: string | undefined): string {
  const named = manifest.files !== undefined;
  const safe =
    linkName !== undefined && /^[^/\\\0]+$/.test(linkName) && linkName !== '.' && linkName !== '..';
  if (!named && safe) return linkName;
  return defaultOutputName(manifest, hex);
}

/** A store row for `peapod ls`: no manifest, and a name to show. */
function withoutManifest(row: StoredContent, held: readonly number[]): ContentRow {
  const { manifest, ...rest } = row;
  return { ...rest, name: contentName(manifest, row), heldRanges: indexRanges(held) };
}

/** Ascending indices as `[start, end)` runs. */
function indexRanges(indices: readonly number[]): Array<{ start: number; end: number }> {
  const ranges: Array<{ start: number; end: number }> = [];
  for (const index of indices) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.end === index) last.end += 1;
    else ranges.push({ start: index, end: index + 1 });
  }
  return ranges;
}

function contentName(manifest: Manifest, row: StoredContent): string {
  const files = manifest.files;
  if (files?.length === 1 && !files[0]!.path.includes('/')) return files[0]!.path;
  const root = treeRoot(manifest);
  if (root !== undefined) return `${root}/`;
  if (row.origin.kind === 'url') {
    try {
      return (
        decodeURIComponent(new URL(row.origin.url).pathname.split('/').pop() ?? '') ||
        row.origin.url
      );
    } catch {
      return row.origin.url;
    }
  }
  return files === undefined ? '' : `${files.length} files`;
}
