/**
 * Fetching a content's manifest from a peer (docs/protocol.md 7.2, "Manifests by request"), for
 * a content download started without one: a CHUNK_REQUEST whose `chunkHash` is the content ID,
 * asked of one ready link at a time among those that announced chunks of the content (so they
 * hold its manifest). The answer is accepted only if `decodeManifest(bytes, contentId)`
 * succeeds, so a peer cannot substitute another manifest; a peer whose manifest does not hash
 * to the ID is banned (that mismatch is certain). A refusal (any STATUS but ok) skips that link
 * for `MANIFEST_RETRY_MS`. DATA out of order or past `MANIFEST_BYTES_MAX` is a protocol error.
 *
 * It is its own request handler: the engine routes the request's DATA and STATUS here.
 */
import { decodeManifest, MANIFEST_BYTES_MAX, type Manifest } from '../content/manifest.js';
import {
  Capability,
  TransferStatus,
  type DataMessage,
  type StatusMessage,
} from '../wire/messages.js';
import type { RequestHandler, TransferContext } from './transfer-context.js';

/** How long a link that refused the manifest is not asked again. */
const MANIFEST_RETRY_MS = 5_000;

interface ManifestRequest {
  readonly linkId: number;
  readonly requestId: number;
  readonly parts: Uint8Array[];
  received: number;
}

export class ManifestFetch implements RequestHandler {
  private request: ManifestRequest | undefined;
  private readonly retryAfterMs = new Map<number, number>();
  private done = false;

  constructor(
    private readonly ctx: TransferContext,
    private readonly contentId: Uint8Array,
    private readonly key: string,
    /** The manifest arrived and matches the content ID. */
    private readonly onManifest: (manifest: Manifest, nowMs: number) => void,
  ) {}

  /** Bytes of the answer received so far (memory the download holds). */
  get receivedBytes(): number {
    return this.request?.received ?? 0;
  }

  /** Asks the next willing link, unless a request is open. */
  ask(nowMs: number): void {
    if (this.done || this.request !== undefined) return;
    for (const linkId of this.ctx.availability.linksKnowing(this.key)) {
      const peer = this.ctx.links.peer(linkId);
      if (peer === undefined || (peer.capabilities & Capability.serveChunks) === 0) continue;
      if ((this.retryAfterMs.get(linkId) ?? 0) > nowMs) continue;
      const requestId = this.ctx.openRequest(linkId, this);
      if (requestId === undefined) continue;
      this.request = { linkId, requestId, parts: [], received: 0 };
      this.ctx.links.send(linkId, {
        type: 'chunk-request',
        requestId,
        chunkHash: this.contentId,
        priority: 0,
      });
      return;
    }
  }

  onData(linkId: number, message: DataMessage, nowMs: number): void {
    const request = this.request;
    if (request?.linkId !== linkId || request.requestId !== message.requestId) return;
    if (
      message.offset !== request.received ||
      request.received + message.bytes.length > MANIFEST_BYTES_MAX
    ) {
      this.ctx.protocolError(linkId, 'manifest DATA out of order or too large', nowMs);
      return;
    }
    request.parts.push(message.bytes.slice());
    request.received += message.bytes.length;
  }

  onStatus(linkId: number, message: StatusMessage, nowMs: number): void {
    const request = this.request;
    if (request?.linkId !== linkId || request.requestId !== message.requestId) return;
    this.request = undefined;
    if (this.done) return;
    if (message.status !== TransferStatus.ok) {
      this.retryAfterMs.set(linkId, nowMs + MANIFEST_RETRY_MS);
      return;
    }
    const bytes = new Uint8Array(request.received);
    let at = 0;
    for (const part of request.parts) {
      bytes.set(part, at);
      at += part.length;
    }
    const decoded = decodeManifest(this.ctx.crypto, bytes, this.contentId);
    if (!decoded.ok) {
      this.ctx.ban(linkId, `manifest rejected: ${decoded.reason}`, nowMs);
      return;
    }
    this.done = true;
    this.onManifest(decoded.manifest, nowMs);
  }

  onLinkClosed(linkId: number): void {
    if (this.request?.linkId === linkId) this.request = undefined;
  }

  /** The next time a refusing link may be asked again. */
  nextRetryMs(nowMs: number): number | undefined {
    let min: number | undefined;
    for (const at of this.retryAfterMs.values()) {
      if (at > nowMs && (min === undefined || at < min)) min = at;
    }
    return min;
  }

  /** The download ended: cancel the open request, if any. */
  cancel(): void {
    this.done = true;
    if (this.request !== undefined) {
      this.ctx.cancelRequest(this.request.linkId, this.request.requestId);
    }
    this.request = undefined;
  }
}
