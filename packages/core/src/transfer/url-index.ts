/**
 * URL lookups across the pod (DESIGN.md decision 16; docs/protocol.md, URL_QUERY / URL_ANSWER):
 * which content holds the bytes of a URL at which version.
 *
 * SPINE: the interface the engine calls; the core-content helper implements it (the table of
 * this device's mappings, bounded; answering URL_QUERY; asking ready links and collecting their
 * URL_ANSWERs into one `url:lookup` event per lookup, with URL_LOOKUP_TIMEOUT_MS).
 */
import type { TransferContext } from './transfer-context.js';

export class UrlIndex {
  constructor(private readonly ctx: TransferContext) {}

  /** This device holds `contentId` as `url` at `validator` (`url-content`). */
  map(url: string, validator: string, contentId: Uint8Array): void {
    void url;
    void validator;
    void contentId;
    void this.ctx;
  }

  /** Chunks of `contentId` went; `gone` true when none is left: its mappings go too. */
  forgetContent(contentId: Uint8Array, gone: boolean): void {
    void contentId;
    void gone;
  }

  /** `lookup-url`: ask the ready links. */
  lookup(lookupId: number, url: string, nowMs: number): void {
    void nowMs;
    this.ctx.event({ type: 'url:lookup', lookupId, url, holders: [] });
  }
}
