/**
 * Preloaded (`node --import`) into a program under test to show which sockets it turns Nagle's
 * algorithm off for: each `setNoDelay(true)` appends "localPort remotePort" to the file named by
 * TSSH_NODELAY_LOG. Node cannot read TCP_NODELAY back from a socket, so the call is what a test
 * can check.
 */
import { appendFileSync } from 'node:fs';
import { Socket } from 'node:net';

const log = process.env.TSSH_NODELAY_LOG;
const original = Socket.prototype.setNoDelay;
Socket.prototype.setNoDelay = function (this: Socket, noDelay?: boolean): Socket {
  if (log && noDelay !== false) appendFileSync(log, `${this.localPort ?? ''} ${this.remotePort ?? ''}\n`);
  return original.call(this, noDelay);
};
