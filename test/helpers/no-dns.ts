/**
 * Preloaded (`node --import`) into a program under test so that it never asks a DNS server:
 * every name but localhost fails to resolve as an unknown host would. Tests then exercise
 * "unknown host" handling with traffic on loopback only.
 */
import dns from 'node:dns';

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

const original = dns.lookup;
const patched = (hostname: string, options: unknown, callback?: unknown): void => {
  const cb = (typeof options === 'function' ? options : callback) as LookupCallback;
  if (hostname === 'localhost' || /^[0-9.]+$/.test(hostname) || hostname.includes(':')) {
    (original as unknown as (h: string, o: unknown, c: LookupCallback) => void)(hostname, typeof options === 'function' ? {} : options, cb);
    return;
  }
  const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }) as NodeJS.ErrnoException;
  process.nextTick(() => cb(error, ''));
};
(dns as unknown as { lookup: typeof patched }).lookup = patched;
