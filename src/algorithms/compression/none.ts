/** Compression method "none" (RFC 4253 §6.2): payloads pass through untouched. */
import type { CompressionAlgorithm } from '../types.js';

export const noCompression: CompressionAlgorithm = Object.freeze({
  name: 'none',
  delayed: false,
  createCompressor: () => undefined,
  createDecompressor: () => undefined,
});
