/**
 * The manifest of a content this device does not know yet, from the pod: `peapod fetch ID`
 * needs it before the real download starts (a tree's file table says where the bytes go and
 * which chunks `--only` picks, and the store indexes chunks by it).
 *
 * Theory of operation: a core content download started without a manifest makes the core ask
 * it of the members that announced the content, check it against the content ID and report it
 * (`download:manifest`), before any chunk of it arrives (the daemon records every such manifest
 * in its store first). The probe then cancels the download; the real one starts with the
 * manifest (a chunk selection needs it at the start). A chunk request
 * the core sent meanwhile is cancelled with it. When no connected member gives the manifest
 * within the stall timeout the core fails the download 'unavailable', and the probe answers
 * with that sentence.
 */
import type { Manifest, TransferEvent } from '@peapod/core';
import type { CoreJob, JobFactory } from './job-factory.js';

export type ManifestAnswer =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly message: string };

class ManifestProbe implements CoreJob {
  downloadId: number | undefined;
  private manifest: Manifest | undefined;
  private settle: (answer: ManifestAnswer) => void = () => undefined;
  readonly answer = new Promise<ManifestAnswer>((resolve) => (this.settle = resolve));

  constructor(private readonly jobs: JobFactory) {}

  start(contentId: Uint8Array): void {
    this.downloadId = this.jobs.startContentDownload(this, { contentId });
  }

  onDeliver(): void {
    // Cancelled at the manifest, before any chunk arrives (the core reports it first): bytes
    // here would break that order, so stop at once rather than download the content to drop it.
    this.finish({
      ok: false,
      message: 'a chunk arrived before the manifest; this is a PeaPod bug, please report it',
    });
  }

  readDelivered(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  onCoreEvent(event: TransferEvent): void {
    if (event.type === 'download:manifest') {
      this.manifest = event.manifest;
      this.finish({ ok: true, manifest: event.manifest });
    } else if (event.type === 'download:complete') {
      this.finish(
        this.manifest === undefined
          ? { ok: false, message: 'the pod answered without the manifest; try again' }
          : { ok: true, manifest: this.manifest },
      );
    } else if (event.type === 'download:failed') {
      this.finish({
        ok: false,
        message: `${event.reason}: ${event.detail}`,
      });
    }
  }

  cancel(): Promise<void> {
    this.finish({ ok: false, message: 'cancelled' });
    return Promise.resolve();
  }

  private finish(answer: ManifestAnswer): void {
    if (this.downloadId !== undefined) {
      this.jobs.cancelCoreDownload(this.downloadId);
      this.downloadId = undefined;
    }
    this.settle(answer);
  }
}

/** The manifest of `contentId` from the pod, or the sentence saying why there is none. */
export function manifestFromPod(jobs: JobFactory, contentId: Uint8Array): Promise<ManifestAnswer> {
  const probe = new ManifestProbe(jobs);
  probe.start(contentId);
  return probe.answer;
}
