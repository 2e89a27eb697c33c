/*
 * Poly1305 (RFC 8439 section 2.5), compiled to WebAssembly for chacha20-poly1305@openssh.com
 * (scripts/build-poly1305-wasm.mjs compiles it into ./poly1305-wasm.ts, which ./poly1305.ts loads).
 * Written for tssh.
 *
 * Arithmetic modulo p = 2^130 - 5 in five 26-bit limbs, so that every limb product fits in 64 bits
 * (WebAssembly has no 64 x 64 -> 128-bit multiply): per 16-byte block, h = (h + block) * r.
 *
 * Constant time: no branch or memory index depends on the key or the message, only on its length.
 */
#include <stdint.h>

/* The largest message: a packet of 256 KiB (tssh's limit) plus its length field. */
#define MAX_MESSAGE (256 * 1024 + 64)
#define MASK26 0x3ffffffu

/* Where JavaScript puts the 32-byte one-time key, then the tag comes, then the message. */
static uint8_t area[32 + 16 + MAX_MESSAGE] __attribute__((aligned(16)));

/* The address of the area in the module's memory. */
__attribute__((export_name("area"))) uint8_t *area_address(void) { return area; }

/* How long a message the area holds. */
__attribute__((export_name("max_message"))) uint32_t max_message(void) { return MAX_MESSAGE; }

/* WebAssembly memory is little-endian, as Poly1305's numbers are. */
static inline uint32_t load32(const uint8_t *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

static inline void store32(uint8_t *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

/*
 * The tag of the `length`-byte message at area + 48 under the key at area, written to area + 32.
 * Returns 0, or -1 (and writes nothing) for a message longer than the area.
 */
__attribute__((export_name("poly1305"))) int poly1305(uint32_t length) {
  const uint8_t *key = area;
  uint8_t *tag = area + 32;
  const uint8_t *m = area + 48;
  if (length > MAX_MESSAGE) return -1;

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
  return 0;
}
