/**
 * The iteration count of an encrypted PKCS#8 key (RFC 5958 §3 EncryptedPrivateKeyInfo), read
 * before OpenSSL is asked to decrypt it: OpenSSL runs whatever count the file names (an INTEGER
 * of any size), so a hostile file could hold a process for hours. Only the few DER elements on the
 * way to the count are decoded:
 *
 *   EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier, encryptedData OCTET STRING }
 *   PBES2 (RFC 8018 A.4):   params SEQUENCE { keyDerivationFunc AlgorithmIdentifier, encryptionScheme … }
 *   PBKDF2 (RFC 8018 A.2):  params SEQUENCE { salt, iterationCount INTEGER, … }
 *   PBES1 and PKCS#12 PBE (RFC 8018 A.3, RFC 7292 C): params SEQUENCE { salt OCTET STRING, iterationCount INTEGER }
 */

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OID = 0x06;
/** 1.2.840.113549.1.5.13 and 1.2.840.113549.1.5.12, DER content bytes. */
const PBES2 = Buffer.from('2a864886f70d01050d', 'hex');
const PBKDF2 = Buffer.from('2a864886f70d01050c', 'hex');

interface Element {
  readonly tag: number;
  readonly content: Buffer;
  /** Offset just past this element in its parent. */
  readonly next: number;
}

/** One DER element at `offset`, or undefined if it does not fit (X.690 §8.1: tag, length, content). */
function element(data: Buffer, offset: number): Element | undefined {
  if (offset + 2 > data.length) return undefined;
  const tag = data[offset]!;
  let length = data[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || start + octets > data.length) return undefined;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + data[start + i]!;
    start += octets;
  }
  if (start + length > data.length) return undefined;
  return { tag, content: data.subarray(start, start + length), next: start + length };
}

/** The children of a constructed element's content. */
function children(content: Buffer): Element[] {
  const out: Element[] = [];
  for (let offset = 0; offset < content.length; ) {
    const child = element(content, offset);
    if (child === undefined) return out;
    out.push(child);
    offset = child.next;
  }
  return out;
}

/** An INTEGER's value, capped at Number.MAX_SAFE_INTEGER (enough to compare with a limit). */
function integer(e: Element | undefined): number | undefined {
  if (e === undefined || e.tag !== INTEGER || e.content.length === 0) return undefined;
  let value = 0;
  for (const byte of e.content) value = Math.min(value * 256 + byte, Number.MAX_SAFE_INTEGER);
  return value;
}

/**
 * The KDF iteration count of an EncryptedPrivateKeyInfo in DER, or undefined when the structure is
 * not one of the schemes above (scrypt, or something malformed: OpenSSL then reports the error).
 */
export function pkcs8IterationCount(der: Buffer): number | undefined {
  const top = element(der, 0);
  if (top === undefined || top.tag !== SEQUENCE) return undefined;
  const algorithm = children(top.content)[0];
  if (algorithm === undefined || algorithm.tag !== SEQUENCE) return undefined;
  const [oid, params] = children(algorithm.content);
  if (oid === undefined || oid.tag !== OID || params === undefined || params.tag !== SEQUENCE) return undefined;
  if (!oid.content.equals(PBES2)) return integer(children(params.content)[1]);
  const kdf = children(params.content)[0];
  if (kdf === undefined || kdf.tag !== SEQUENCE) return undefined;
  const [kdfOid, kdfParams] = children(kdf.content);
  if (kdfOid === undefined || !kdfOid.content.equals(PBKDF2) || kdfParams === undefined || kdfParams.tag !== SEQUENCE) return undefined;
  return integer(children(kdfParams.content)[1]);
}
