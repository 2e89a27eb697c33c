// @ts-check
/**
 * Loading the `ssh2` package (CommonJS) from the benchmark scripts, and switching off its optional
 * native crypto binding (lib/protocol/crypto/build/Release/sshcrypto.node, built by its install
 * script when a compiler is there) to measure ssh2 on node:crypto alone.
 */
import Module, { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Make ssh2's `require('./crypto/build/Release/sshcrypto.node')` fail, as when the build did not happen. */
export function hideSsh2Binding() {
  const M = /** @type {any} */ (Module);
  const load = M._load;
  M._load = function (/** @type {string} */ request, /** @type {unknown[]} */ ...rest) {
    if (request.endsWith('sshcrypto.node')) throw new Error('ssh2 native binding hidden by --no-native');
    return load.call(this, request, ...rest);
  };
}

/** @returns {any} the ssh2 module */
export function loadSsh2() {
  return require('ssh2');
}

/** Whether ssh2 uses its native binding (AES-GCM and chacha20-poly1305 sealing in place). */
export function ssh2BindingAvailable() {
  return Boolean(require('ssh2/lib/protocol/crypto.js').bindingAvailable);
}
