/**
 * @peapod/node: the Node host. Today it holds the node:crypto provider; the daemon, the
 * `peapod` CLI and the library API join it next.
 */
export {
  createNodeCryptoProvider,
  type NodeCryptoProvider,
  type NodeCryptoProviderOptions,
} from './node-crypto-provider.js';
