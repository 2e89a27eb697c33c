import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyAlgorithmSetting,
  cipherAlgorithms,
  kexAlgorithms,
  macAlgorithms,
  signatureAlgorithms,
} from '../../src/algorithms/registry.js';

describe('algorithm registry and defaults', () => {
  test('defaults put the post-quantum hybrid first, then curve25519, then the DH groups', () => {
    assert.deepEqual(kexAlgorithms.defaults, [
      'mlkem768x25519-sha256',
      'curve25519-sha256',
      'curve25519-sha256@libssh.org',
      'diffie-hellman-group-exchange-sha256',
      'diffie-hellman-group16-sha512',
      'diffie-hellman-group18-sha512',
      'diffie-hellman-group14-sha256',
    ]);
  });

  test('SHA-1, the 1024-bit group and NIST-curve ECDH are supported but not offered by default', () => {
    for (const name of ['diffie-hellman-group14-sha1', 'diffie-hellman-group1-sha1', 'ecdh-sha2-nistp256']) {
      assert.ok(kexAlgorithms.all.has(name));
      assert.ok(!kexAlgorithms.defaults.includes(name), name);
    }
    assert.ok(!signatureAlgorithms.defaults.includes('ssh-rsa'));
    assert.ok(!macAlgorithms.defaults.some((name) => name.includes('sha1')));
  });

  test('+ appends to the defaults, - removes (with wildcards), ^ puts first', () => {
    assert.deepEqual(applyAlgorithmSetting(cipherAlgorithms, '+aes128-ctr'), [...cipherAlgorithms.defaults]);
    assert.deepEqual(applyAlgorithmSetting(macAlgorithms, '+hmac-sha1').at(-1), 'hmac-sha1');
    assert.deepEqual(applyAlgorithmSetting(cipherAlgorithms, '-aes*-ctr'), [
      'chacha20-poly1305@openssh.com',
      'aes128-gcm@openssh.com',
      'aes256-gcm@openssh.com',
    ]);
    assert.deepEqual(applyAlgorithmSetting(cipherAlgorithms, '^aes256-gcm@openssh.com').slice(0, 2), [
      'aes256-gcm@openssh.com',
      'chacha20-poly1305@openssh.com',
    ]);
    assert.deepEqual(applyAlgorithmSetting(cipherAlgorithms, 'aes128-ctr,aes256-ctr'), ['aes128-ctr', 'aes256-ctr']);
    assert.deepEqual(applyAlgorithmSetting(cipherAlgorithms, undefined), [...cipherAlgorithms.defaults]);
  });

  test('an unknown name is an error that names it', () => {
    assert.throws(() => applyAlgorithmSetting(cipherAlgorithms, 'aes128-ctr,3des-cbc'), /unsupported cipher: 3des-cbc/);
  });
});
