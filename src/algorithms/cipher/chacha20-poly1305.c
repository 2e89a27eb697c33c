/*
 * The primitives of chacha20-poly1305@openssh.com, compiled to WebAssembly (scripts/build-wasm.mjs
 * compiles this file into ./chacha20-poly1305-wasm.ts, which ./wasm.ts loads). Written for tssh.
 *
 * - ChaCha20 as DJB defined it (64-bit block counter, 64-bit nonce; OpenSSH's variant, not RFC
 *   8439's 32-bit counter and 96-bit nonce), for the packet length, the Poly1305 key and small
 *   payloads. node:crypto's ChaCha20 is faster per byte, but every packet would need a cipher
 *   object for each of the two keys (a few microseconds each), which costs more than computing a
 *   few blocks here. Large payloads still go to node:crypto (./chacha20-poly1305.ts decides).
 * - Poly1305 (RFC 8439 section 2.5), which Node does not offer at all: arithmetic modulo
 *   p = 2^130 - 5 in five 26-bit limbs, so that every limb product fits in 64 bits (WebAssembly has
 *   no 64 x 64 -> 128-bit multiply): per 16-byte block, h = (h + block) * r.
 * - The packet operations of PROTOCOL.chacha20poly1305 built from them, so that a small packet
 *   crosses into the module once: its length, payload and tag in one call.
 *
 * Constant time: no branch or memory index depends on a key or a message, only on lengths.
 *
 * JavaScript writes the keys, the nonce and the message into `area` (its fields' addresses are
 * exported) and reads the results back from there. The module allocates nothing and never grows
 * its memory.
 */
#include <stdint.h>

/* The largest message: a packet of 256 KiB (tssh's limit) plus its length field, and a tag. */
#define MAX_MESSAGE (256 * 1024 + 64)
#define TAG_LENGTH 16
#define MASK26 0x3ffffffu

static struct {
  uint8_t payload_key[32]; /* K_1 of PROTOCOL.chacha20poly1305: payload and Poly1305 key */
  uint8_t length_key[32];  /* K_2: the 4-byte packet length */
  uint8_t poly_key[32];    /* a one-time Poly1305 key */
  uint8_t tag[TAG_LENGTH]; /* where poly1305() writes */
  uint8_t nonce[8];        /* the packet's sequence number, big-endian uint64 */
  uint8_t pad[8];
  uint8_t message[MAX_MESSAGE + TAG_LENGTH];
} area __attribute__((aligned(16)));

__attribute__((export_name("payload_key"))) uint8_t *payload_key_address(void) { return area.payload_key; }
__attribute__((export_name("length_key"))) uint8_t *length_key_address(void) { return area.length_key; }
__attribute__((export_name("poly_key"))) uint8_t *poly_key_address(void) { return area.poly_key; }
__attribute__((export_name("tag"))) uint8_t *tag_address(void) { return area.tag; }
__attribute__((export_name("nonce"))) uint8_t *nonce_address(void) { return area.nonce; }
__attribute__((export_name("message"))) uint8_t *message_address(void) { return area.message; }

/* How long a message the area holds (a sealed packet's tag goes after it). */
__attribute__((export_name("max_message"))) uint32_t max_message(void) { return MAX_MESSAGE; }

/* WebAssembly memory is little-endian, as ChaCha20's and Poly1305's numbers are. */
static inline uint32_t load32(const uint8_t *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

static inline void store32(uint8_t *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

static inline uint32_t rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

#define QUARTER(a, b, c, d)                        \
  a += b; d ^= a; d = rotl(d, 16);                 \
  c += d; b ^= c; b = rotl(b, 12);                 \
  a += b; d ^= a; d = rotl(d, 8);                  \
  c += d; b ^= c; b = rotl(b, 7)

/* Keystream block `counter` of `key` under area.nonce (the counter's high 32 bits are 0: a packet
 * of at most 256 KiB is far fewer than 2^32 blocks). */
static void chacha20_block(uint8_t out[64], const uint8_t key[32], uint32_t counter) {
  uint32_t in[16] = {
      0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, /* "expand 32-byte k" */
      load32(key), load32(key + 4), load32(key + 8), load32(key + 12),
      load32(key + 16), load32(key + 20), load32(key + 24), load32(key + 28),
      counter, 0, load32(area.nonce), load32(area.nonce + 4),
  };
  uint32_t x0 = in[0], x1 = in[1], x2 = in[2], x3 = in[3], x4 = in[4], x5 = in[5], x6 = in[6], x7 = in[7];
  uint32_t x8 = in[8], x9 = in[9], x10 = in[10], x11 = in[11], x12 = in[12], x13 = in[13], x14 = in[14], x15 = in[15];
  for (int i = 0; i < 10; i++) {
    QUARTER(x0, x4, x8, x12);
    QUARTER(x1, x5, x9, x13);
    QUARTER(x2, x6, x10, x14);
    QUARTER(x3, x7, x11, x15);
    QUARTER(x0, x5, x10, x15);
    QUARTER(x1, x6, x11, x12);
    QUARTER(x2, x7, x8, x13);
    QUARTER(x3, x4, x9, x14);
  }
  store32(out, x0 + in[0]); store32(out + 4, x1 + in[1]); store32(out + 8, x2 + in[2]); store32(out + 12, x3 + in[3]);
  store32(out + 16, x4 + in[4]); store32(out + 20, x5 + in[5]); store32(out + 24, x6 + in[6]); store32(out + 28, x7 + in[7]);
  store32(out + 32, x8 + in[8]); store32(out + 36, x9 + in[9]); store32(out + 40, x10 + in[10]); store32(out + 44, x11 + in[11]);
  store32(out + 48, x12 + in[12]); store32(out + 52, x13 + in[13]); store32(out + 56, x14 + in[14]); store32(out + 60, x15 + in[15]);
}

/* XOR `length` bytes at `data` with the keystream of `key` from block `counter` on. */
static void chacha20_xor(uint8_t *data, uint32_t length, const uint8_t key[32], uint32_t counter) {
  uint8_t block[64];
  while (length > 0) {
    chacha20_block(block, key, counter++);
    const uint32_t n = length < 64 ? length : 64;
    for (uint32_t i = 0; i < n; i++) data[i] ^= block[i];
    data += n;
    length -= n;
  }
}

/* The Poly1305 tag of the `length` bytes at `m` under the 32-byte one-time `key`. */
static void poly1305_tag(uint8_t tag[TAG_LENGTH], const uint8_t *m, uint32_t length, const uint8_t key[32]) {
  /* r, clamped (section 2.5), in 26-bit limbs; s_i = 5 r_i folds 2^130 back in as 5. */
  const uint64_t r0 = load32(key) & 0x3ffffff;
  const uint64_t r1 = (load32(key + 3) >> 2) & 0x3ffff03;
  const uint64_t r2 = (load32(key + 6) >> 4) & 0x3ffc0ff;
  const uint64_t r3 = (load32(key + 9) >> 6) & 0x3f03fff;
  const uint64_t r4 = (load32(key + 12) >> 8) & 0x00fffff;
  const uint64_t s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;

  uint32_t h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0;
  uint8_t last[16];
  uint32_t remaining = length;
  while (remaining > 0) {
    const uint8_t *block = m;
    uint32_t hibit = 1u << 24; /* 2^128: the 1 byte after a whole block */
    if (remaining < 16) {
      /* The last partial block, with a 1 byte after it (section 2.5.1), zero-padded. */
      for (uint32_t i = 0; i < 16; i++) last[i] = 0;
      for (uint32_t i = 0; i < remaining; i++) last[i] = m[i];
      last[remaining] = 1;
      block = last;
      hibit = 0;
      remaining = 16;
    }
    h0 += load32(block) & MASK26;
    h1 += (load32(block + 3) >> 2) & MASK26;
    h2 += (load32(block + 6) >> 4) & MASK26;
    h3 += (load32(block + 9) >> 6) & MASK26;
    h4 += (load32(block + 12) >> 8) | hibit;

    /* h * r: each sum of five products stays below 2^64. */
    uint64_t d0 = (uint64_t)h0 * r0 + (uint64_t)h1 * s4 + (uint64_t)h2 * s3 + (uint64_t)h3 * s2 + (uint64_t)h4 * s1;
    uint64_t d1 = (uint64_t)h0 * r1 + (uint64_t)h1 * r0 + (uint64_t)h2 * s4 + (uint64_t)h3 * s3 + (uint64_t)h4 * s2;
    uint64_t d2 = (uint64_t)h0 * r2 + (uint64_t)h1 * r1 + (uint64_t)h2 * r0 + (uint64_t)h3 * s4 + (uint64_t)h4 * s3;
    uint64_t d3 = (uint64_t)h0 * r3 + (uint64_t)h1 * r2 + (uint64_t)h2 * r1 + (uint64_t)h3 * r0 + (uint64_t)h4 * s4;
    uint64_t d4 = (uint64_t)h0 * r4 + (uint64_t)h1 * r3 + (uint64_t)h2 * r2 + (uint64_t)h3 * r1 + (uint64_t)h4 * r0;

    /* Partial reduction: limbs back under 2^26, except h1 (under 2^26 + 2^6). */
    d1 += d0 >> 26;
    d2 += d1 >> 26;
    d3 += d2 >> 26;
    d4 += d3 >> 26;
    uint64_t l0 = (d0 & MASK26) + (d4 >> 26) * 5;
    h0 = (uint32_t)(l0 & MASK26);
    h1 = (uint32_t)(d1 & MASK26) + (uint32_t)(l0 >> 26);
    h2 = (uint32_t)(d2 & MASK26);
    h3 = (uint32_t)(d3 & MASK26);
    h4 = (uint32_t)(d4 & MASK26);

    m += 16;
    remaining -= 16;
  }

  /* Carry fully, then subtract p when h >= p, without branching on h. */
  uint32_t c;
  c = h1 >> 26; h1 &= MASK26; h2 += c;
  c = h2 >> 26; h2 &= MASK26; h3 += c;
  c = h3 >> 26; h3 &= MASK26; h4 += c;
  c = h4 >> 26; h4 &= MASK26; h0 += c * 5;
  c = h0 >> 26; h0 &= MASK26; h1 += c;
  uint32_t g0 = h0 + 5; c = g0 >> 26; g0 &= MASK26;
  uint32_t g1 = h1 + c; c = g1 >> 26; g1 &= MASK26;
  uint32_t g2 = h2 + c; c = g2 >> 26; g2 &= MASK26;
  uint32_t g3 = h3 + c; c = g3 >> 26; g3 &= MASK26;
  uint32_t g4 = h4 + c - (1u << 26);
  /* g4's top bit is set when h + 5 < 2^130, that is when h < p: then h stays. */
  const uint32_t keep_g = (g4 >> 31) - 1;
  h0 = (h0 & ~keep_g) | (g0 & keep_g);
  h1 = (h1 & ~keep_g) | (g1 & keep_g);
  h2 = (h2 & ~keep_g) | (g2 & keep_g);
  h3 = (h3 & ~keep_g) | (g3 & keep_g);
  h4 = (h4 & ~keep_g) | (g4 & keep_g);

  /* h mod 2^128 as four 32-bit words, plus s (the key's second half) mod 2^128. */
  const uint32_t w0 = h0 | (h1 << 26);
  const uint32_t w1 = (h1 >> 6) | (h2 << 20);
  const uint32_t w2 = (h2 >> 12) | (h3 << 14);
  const uint32_t w3 = (h3 >> 18) | (h4 << 8);
  uint64_t f;
  f = (uint64_t)w0 + load32(key + 16); store32(tag, (uint32_t)f);
  f = (uint64_t)w1 + load32(key + 20) + (f >> 32); store32(tag + 4, (uint32_t)f);
  f = (uint64_t)w2 + load32(key + 24) + (f >> 32); store32(tag + 8, (uint32_t)f);
  f = (uint64_t)w3 + load32(key + 28) + (f >> 32); store32(tag + 12, (uint32_t)f);
}

/*
 * The tag of the `length`-byte message at area.message under area.poly_key, written to area.tag.
 * Returns 0, or -1 (and writes nothing) for a message longer than the area.
 */
__attribute__((export_name("poly1305"))) int poly1305(uint32_t length) {
  if (length > MAX_MESSAGE) return -1;
  poly1305_tag(area.tag, area.message, length, area.poly_key);
  return 0;
}

/* Encrypt (or decrypt) the packet length, the 4 bytes at area.message, with the length key. */
__attribute__((export_name("crypt_length"))) void crypt_length(void) {
  uint8_t block[64];
  chacha20_block(block, area.length_key, 0);
  for (int i = 0; i < 4; i++) area.message[i] ^= block[i];
}

/* The Poly1305 key of this packet: the first half of the payload key's block 0. */
static void make_poly_key(void) {
  uint8_t block[64];
  chacha20_block(block, area.payload_key, 0);
  for (int i = 0; i < 32; i++) area.poly_key[i] = block[i];
}

/*
 * Seal the `length`-byte packet (uint32 length, then padding length, payload, padding) at
 * area.message: the length encrypted, the Poly1305 key made, and, when `whole` is 1, the rest
 * encrypted from block 1 and the tag of it all written right after it. When `whole` is 0 the
 * caller encrypts the rest itself, puts it in place and calls poly1305(length).
 * Returns 0, or -1 for a packet longer than the area.
 */
__attribute__((export_name("seal"))) int seal(uint32_t length, int whole) {
  if (length < 4 || length > MAX_MESSAGE) return -1;
  crypt_length();
  make_poly_key();
  if (whole) {
    chacha20_xor(area.message + 4, length - 4, area.payload_key, 1);
    poly1305_tag(area.message + length, area.message, length, area.poly_key);
  }
  return 0;
}

/*
 * Check the tag of the `length`-byte sealed packet at area.message (the tag follows it), before
 * anything is decrypted; then, when `whole` is 1, decrypt the bytes after the length in place.
 * Returns 0, or -1 when the tag is wrong (nothing decrypted) or the packet too long.
 */
__attribute__((export_name("open"))) int open(uint32_t length, int whole) {
  if (length < 4 || length > MAX_MESSAGE) return -1;
  make_poly_key();
  uint8_t expected[TAG_LENGTH];
  poly1305_tag(expected, area.message, length, area.poly_key);
  uint32_t difference = 0;
  for (int i = 0; i < TAG_LENGTH; i++) difference |= (uint32_t)(expected[i] ^ area.message[length + i]);
  if (difference != 0) return -1;
  if (whole) chacha20_xor(area.message + 4, length - 4, area.payload_key, 1);
  return 0;
}
