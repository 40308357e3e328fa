/**
 * The manifest of a content this device does not know yet, from the pod: `peapod fetch ID`
 * needs it before the real download starts (a tree's file table says where the bytes go and
 * which chunks `--only` picks, and the store indexes chunks by it).
 *
 * Theory of operation: a core content download started without a manifest makes the core ask
 * it of the members that announced the content, check it against the content ID and report it
 * (`download:manifest`), before any chunk of it arrives. The probe then records it (`onManifest`:
 * the store must know a content before its first chunk is stored) and cancels the download; the
 * real one starts with the manifest (a chunk selection needs it at the start). A chunk request
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

  constructor(
    private readonly jobs: JobFactory,
    private readonly onManifest: (manifest: Manifest) => void,
  ) {}

  start(contentId: Uint8Array): void {
    this.downloadId = this.jobs.startContentDownload(this, { contentId });
  }

  onDeliver(_offset: number, bytes: Uint8Array): void {
    // Cancelled at the manifest, before any chunk arrives; acknowledged all the same, should one.
    if (this.downloadId !== undefined) this.jobs.acknowledge(this.downloadId, bytes.length);
  }

  readDelivered(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  onCoreEvent(event: TransferEvent): void {
    const manifest = manifestOf(event);
    if (manifest !== undefined) {
      this.manifest = manifest;
      this.onManifest(manifest);
      this.finish({ ok: true, manifest });
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

/**
 * The manifest of `contentId` from the pod, or the sentence saying why there is none;
 * `onManifest` runs as soon as it arrived, before any chunk of it can be stored.
 */
export function manifestFromPod(
  jobs: JobFactory,
  contentId: Uint8Array,
  onManifest: (manifest: Manifest) => void,
): Promise<ManifestAnswer> {
  const probe = new ManifestProbe(jobs, onManifest);
  probe.start(contentId);
  return probe.answer;
}

/**
 * The manifest of a `download:manifest` event, if `event` is one. Read by name: the core's
 * TransferEvent gains that member with the change this branch's report gives (until then no
 * core emits it, and a fetch of a content the store does not know fails 'unavailable').
 */
function manifestOf(event: { readonly type: string }): Manifest | undefined {
  if (event.type !== 'download:manifest') return undefined;
  const { manifest } = event as { readonly manifest?: Manifest };
  return manifest?.contentId instanceof Uint8Array ? manifest : undefined;
}
