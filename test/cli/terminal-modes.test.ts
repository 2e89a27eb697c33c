import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modesFromSttyG } from '../../src/cli/ssh/terminal-modes.js';
import { decodeTerminalModes, encodeTerminalModes } from '../../src/connection/session.js';

test('decodes `stty -g` (a Linux terminal in its usual cooked mode) into RFC 4254 modes', () => {
  // What GNU stty -g prints for a fresh Linux pty: icrnl ixon iutf8 / opost onlcr / cs8 / isig icanon echo…
  const modes = modesFromSttyG('4500:5:bf:8a3b:3:1c:7f:15:4:0:1:0:11:13:1a:0:12:f:17:16:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0');
  assert.equal(modes.ICRNL, 1);
  assert.equal(modes.IXON, 1);
  assert.equal(modes.IUTF8, 1);
  assert.equal(modes.OPOST, 1);
  assert.equal(modes.ONLCR, 1);
  assert.equal(modes.CS8, 1);
  assert.equal(modes.ICANON, 1);
  assert.equal(modes.ECHO, 1);
  assert.equal(modes.ISIG, 1);
  assert.equal(modes.VINTR, 3); // ^C
  assert.equal(modes.VERASE, 0x7f);
  assert.equal(modes.VEOL, 255); // disabled
  // And they survive the wire encoding.
  assert.deepEqual(decodeTerminalModes(encodeTerminalModes(modes)), modes);
});

test('anything that is not stty -g output gives no modes', () => {
  assert.deepEqual(modesFromSttyG(''), {});
  assert.deepEqual(modesFromSttyG('speed 38400 baud; rows 24'), {});
});
