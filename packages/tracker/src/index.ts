/** @peapod/tracker: the bootstrap tracker and control plane (server and client). */
export { TrackerClient, TrackerError } from './client.js';
export type { TrackerClientOptions, TrackerNode, TrackerSigner } from './client.js';
