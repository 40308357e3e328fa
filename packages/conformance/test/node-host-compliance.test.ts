/**
 * The host compliance suite (host/suite.ts) against the Node host: real `peapod daemon`
 * processes, real TCP and multicast on loopback, a real HTTP origin (host/node-daemon-host.ts).
 */
import { nodeDaemonHost } from './host/node-daemon-host.js';
import { hostComplianceSuite } from './host/suite.js';

hostComplianceSuite(nodeDaemonHost);
