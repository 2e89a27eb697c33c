/**
 * OpenSSH's patterns (ssh_config(5) "PATTERNS"), shared by known_hosts host lists, authorized_keys
 * `from="…"`, ssh_config `Host` and sshd_config `Match`:
 *
 * - a pattern is matched against a whole string; `*` stands for any run of characters (also none),
 *   `?` for exactly one, every other character for itself;
 * - a pattern list is comma-separated; a `!` before a pattern negates it. A string that matches a
 *   negated pattern is refused by the whole list even if another pattern accepts it, so the result
 *   has three values: 'match', 'negated' (a negated pattern matched) and 'none';
 * - host names compare case-insensitively (only ASCII letters fold, as in the C locale);
 * - address lists (`from=`, `Match Address`) also take CIDR networks, IPv4 and IPv6:
 *   `192.0.2.0/24`, `2001:db8::/32`. An entry that is not a network is matched as a wildcard
 *   pattern against the address text (`192.0.2.*`).
 *
 * This module knows nothing of files; it only answers whether a string matches.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The outcome of a pattern list: a positive match, a negated match (which always wins), or neither. */
export type PatternListResult = 'match' | 'negated' | 'none';

/**
 * True when `value` matches the wildcard `pattern` (whole string, `*` and `?`, case-sensitive).
 * Greedy with one backtrack point (the last `*` seen): linear in practice, never exponential.
 */
export function matchPattern(value: string, pattern: string): boolean {
  let v = 0;
  let p = 0;
  // Where to resume when a literal fails after a `*`: the pattern just past it, and the value
  // position that `*` has swallowed up to.
  let starPattern = -1;
  let starValue = 0;
  while (v < value.length) {
    const c = pattern[p];
    if (c === '*') {
      starPattern = ++p;
      starValue = v;
    } else if (c !== undefined && (c === '?' || c === value[v])) {
      p++;
      v++;
    } else if (starPattern >= 0) {
      // Let the last `*` take one more character and retry from there.
      p = starPattern;
      v = ++starValue;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** Lowercase ASCII letters only, like OpenSSH's tolower() in the C locale (other characters are left alone). */
export function asciiLowercase(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

export interface PatternListOptions {
  /** Fold ASCII case of both the value and the patterns (host names). Default false. */
  readonly caseInsensitive?: boolean;
}

/**
 * Match `value` against a comma-separated pattern list where `!pattern` negates. A negated match
 * ends the evaluation at once ('negated'); otherwise 'match' if any positive pattern matched.
 */
export function matchPatternList(value: string, list: string, options: PatternListOptions = {}): PatternListResult {
  const fold = options.caseInsensitive === true;
  const subject = fold ? asciiLowercase(value) : value;
  let matched = false;
  for (const item of list.split(',')) {
    const negated = item.startsWith('!');
    const raw = negated ? item.slice(1) : item;
    const pattern = fold ? asciiLowercase(raw) : raw;
    if (!matchPattern(subject, pattern)) continue;
    if (negated) return 'negated';
    matched = true;
  }
  return matched ? 'match' : 'none';
}

/** A host name against a pattern list, ignoring ASCII case (known_hosts, `from=`, `Match Host`). */
export function matchHostname(host: string, list: string): PatternListResult {
  return matchPatternList(host, list, { caseInsensitive: true });
}

/** True when a pattern contains a wildcard or negation character (such names are never hashed or recorded). */
export function hasWildcards(pattern: string): boolean {
  return /[*?!]/.test(pattern);
}

// ---- Addresses and CIDR networks --------------------------------------------------------------

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

function parseIPv4Bytes(text: string): Uint8Array | undefined {
  if (!isIPv4(text)) return undefined;
  return Uint8Array.from(text.split('.').map((part) => Number(part)));
}

function parseIPv6Bytes(text: string): Uint8Array | undefined {
  if (!isIPv6(text)) return undefined;
  // isIPv6 has vouched for the syntax: expand `::` and a trailing dotted IPv4 part into 8 groups.
  let head = text;
  let tail: number[] = [];
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    const v4 = parseIPv4Bytes(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const toGroups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  const gap = head.indexOf('::');
  if (gap >= 0) {
    const left = toGroups(head.slice(0, gap));
    const right = [...toGroups(head.slice(gap + 2)), ...tail];
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    groups = [...toGroups(head), ...tail];
  }
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * Parse a numeric IPv4 or IPv6 address (an IPv6 zone such as `%eth0` is dropped). IPv4-mapped IPv6
 * addresses (`::ffff:192.0.2.1`, what a dual-stack Node server reports for IPv4 clients) become
 * IPv4, as sshd normalises them before matching (its ipv64_normalise_mapped()).
 */
export function parseIpAddress(text: string): IpAddress | undefined {
  const v4 = parseIPv4Bytes(text);
  if (v4 !== undefined) return { family: 4, bytes: v4 };
  const zone = text.indexOf('%');
  const v6 = parseIPv6Bytes(zone >= 0 ? text.slice(0, zone) : text);
  if (v6 === undefined) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? { family: 4, bytes: v6.slice(12) } : { family: 6, bytes: v6 };
}

/** The canonical text of an address: dotted quad, or RFC 5952 compressed lowercase IPv6. */
export function formatIpAddress(address: IpAddress): string {
  if (address.family === 4) return Array.from(address.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address.bytes[i]! << 8) | address.bytes[i + 1]!);
  // RFC 5952 §4.2: compress the longest run (of two or more) of zero groups, the first if tied.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** A network: an address and how many leading bits of it count. */
export interface IpNetwork {
  readonly address: IpAddress;
  readonly prefixLength: number;
}

/**
 * Parse `address` or `address/prefix` as a network (a bare address is a network of one). Returns
 * undefined when the text is not a network at all (then callers try it as a wildcard pattern) and
 * 'inconsistent' when it is one but has bits set past the prefix (`192.0.2.1/24`): OpenSSH
 * treats that as an error in the list rather than guessing what was meant.
 */
export function parseIpNetwork(text: string): IpNetwork | 'inconsistent' | undefined {
  const slash = text.indexOf('/');
  const address = parseIpAddressStrict(slash >= 0 ? text.slice(0, slash) : text);
  if (address === undefined) return undefined;
  const maxBits = address.family === 4 ? 32 : 128;
  let prefixLength = maxBits;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return undefined;
    prefixLength = Number(digits);
    if (prefixLength > maxBits) return undefined;
  }
  for (let bit = prefixLength; bit < maxBits; bit++) {
    if ((address.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return 'inconsistent';
  }
  return { address, prefixLength };
}

/** An address written in a list: IPv4-mapped IPv6 stays IPv6 here (it names what the admin wrote). */
function parseIpAddressStrict(text: string): IpAddress | undefined {
  const v4 = parseIPv4Bytes(text);
  if (v4 !== undefined) return { family: 4, bytes: v4 };
  const v6 = parseIPv6Bytes(text);
  return v6 === undefined ? undefined : { family: 6, bytes: v6 };
}

/** True when `address` lies inside `network` (families must agree). */
export function networkContains(network: IpNetwork, address: IpAddress): boolean {
  if (network.address.family !== address.family) return false;
  const full = network.prefixLength >> 3;
  for (let i = 0; i < full; i++) if (network.address.bytes[i] !== address.bytes[i]) return false;
  const rest = network.prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (network.address.bytes[full]! & mask) === (address.bytes[full]! & mask);
}

/**
 * Match an address against a list of CIDR networks and wildcard patterns, with `!` negation
 * (`from="…"`, sshd_config `Match Address`). 'invalid' when the list has an empty entry or a
 * network with host bits set: callers must then refuse, never allow. An address that does not
 * parse matches nothing.
 *
 * Unlike host lists, a positive match does not end the scan: a later negated entry still wins.
 */
export function matchAddressList(addressText: string, list: string): PatternListResult | 'invalid' {
  const address = parseIpAddress(addressText);
  if (address === undefined) return 'none';
  // Wildcard entries compare against the canonical text (IPv4 for mapped addresses).
  const text = formatIpAddress(address);
  let result: PatternListResult = 'none';
  for (const item of list.split(',')) {
    const negated = item.startsWith('!');
    const entry = negated ? item.slice(1) : item;
    if (entry === '') return 'invalid';
    const network = parseIpNetwork(entry);
    if (network === 'inconsistent') return 'invalid';
    const hit = network !== undefined ? networkContains(network, address) : matchPattern(text, entry);
    if (!hit) continue;
    if (negated) return 'negated';
    result = 'match';
  }
  return result;
}

/**
 * Match an address against a list of CIDR networks only, no wildcards or negation (a
 * certificate's `source-address` option, PROTOCOL.certkeys). True, false, or 'invalid' for a
 * malformed list, which callers must treat as a refusal.
 */
export function matchCidrList(addressText: string, list: string): boolean | 'invalid' {
  const address = parseIpAddress(addressText);
  let matched = false;
  for (const entry of list.split(',')) {
    if (entry === '' || !/^[0-9a-fA-F.:/]+$/.test(entry)) return 'invalid';
    const network = parseIpNetwork(entry);
    if (network === undefined || network === 'inconsistent') return 'invalid';
    if (address !== undefined && networkContains(network, address)) matched = true;
  }
  return matched;
}

/**
 * The `from="…"` rule (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"): the client is accepted when its
 * canonical host name or its address matches the list and neither matches a negated entry.
 * `host` is the name sshd resolved (with UseDNS off it is the address text itself). 'invalid'
 * when the address list is malformed; callers refuse then.
 */
export function matchHostAndAddress(host: string, address: string, list: string): boolean | 'invalid' {
  const byAddress = matchAddressList(address, list);
  if (byAddress === 'invalid') return 'invalid';
  if (byAddress === 'negated') return false;
  const byHost = matchHostname(host, list);
  if (byHost === 'negated') return false;
  return byHost === 'match' || byAddress === 'match';
}
