/**
 * Join two byte streams both ways (a forwarded channel and a TCP or Unix socket), with
 * back-pressure in each direction, half-close kept (each side's end ends only the other's
 * writing), and either side's failure tearing down both instead of surfacing as an unhandled
 * 'error'.
 */
import type { Duplex } from 'node:stream';

export function joinStreams(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}
