/**
 * The host compliance suite (host/suite.ts) against the simulator host: packages/sim's
 * scenarios, real Cores on a virtual clock (host/sim-host.ts).
 */
import { simHost } from './host/sim-host.js';
import { hostComplianceSuite } from './host/suite.js';

hostComplianceSuite(simHost);
