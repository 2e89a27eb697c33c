/**
 * StrictHostKeyChecking=ask in the library: the known_hosts policy 'ask' puts an unknown host to a
 * callback with what ssh shows (name, address, key type, fingerprint, other names); yes records
 * the key (hashed under HashKnownHosts), no refuses and writes nothing; a changed key and BatchMode
 * are never asked about.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect, fingerprint, HostKeyError, type HostKeyQuestion } from '../../src/index.js';
import { formatOpenSshPublicKey } from '../../src/keys/public-key-text.js';
import { generatePrivateKey } from '../../src/keys/private-key.js';
import { KnownHosts } from '../../src/keys/known-hosts.js';
import { configLab, type ConfigLab, type LabServer } from '../helpers/config-lab.js';

function direct(lab: ConfigLab, box: LabServer) {
  return { host: '127.0.0.1', port: box.port, username: 'alice', privateKeys: [lab.keys.user] } as const;
}

describe("known_hosts policy 'ask'", () => {
  test('an accepted key is recorded and the question says what ssh shows; the next connection is not asked', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = `${lab.dir}/dotssh/known_hosts`;
    const questions: HostKeyQuestion[] = [];
    const ask = (question: HostKeyQuestion): boolean => {
      questions.push(question);
      return true;
    };
    const client = await connect({ ...direct(lab, box), knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask } });
    await client.end();
    assert.equal(questions.length, 1);
    const [question] = questions;
    assert.equal(question!.name, `[127.0.0.1]:${box.port}`);
    assert.equal(question!.host, '127.0.0.1');
    assert.equal(question!.port, box.port);
    assert.equal(question!.address, '127.0.0.1');
    assert.equal(question!.keyType, 'ED25519');
    assert.equal(question!.fingerprint, fingerprint(lab.keys.host.publicKey));
    assert.ok(question!.key.blob.equals(lab.keys.host.publicKey.blob));
    assert.deepEqual(question!.otherNames, []);
    assert.equal(readFileSync(knownHosts, 'utf8'), `${lab.knownHostsLine(box.port)}\n`);

    const again = await connect({ ...direct(lab, box), knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask } });
    await again.end();
    assert.equal(questions.length, 1, 'a known host is not asked about');
  });

  test('a refused key stops the connection before authentication and writes nothing', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = `${lab.dir}/known_hosts`;
    let asked = 0;
    await assert.rejects(
      connect({ ...direct(lab, box), knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask: async () => (asked++, false) } }),
      (error: unknown) => {
        assert.ok(error instanceof HostKeyError);
        assert.equal(error.message, `host key verification failed: the ssh-ed25519 ${fingerprint(lab.keys.host.publicKey)} key of [127.0.0.1]:${box.port} was not accepted`);
        return true;
      },
    );
    assert.equal(asked, 1);
    assert.equal(existsSync(knownHosts), false);
    assert.equal(box.logins.length, 0);
  });

  test('HashKnownHosts: the accepted key is written under a hashed name that still matches', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', '');
    const client = await connect({ ...direct(lab, box), knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask: () => true, hash: true } });
    await client.end();
    const text = readFileSync(knownHosts, 'utf8');
    assert.match(text, /^\|1\|[A-Za-z0-9+/=]{28}\|[A-Za-z0-9+/=]{28} ssh-ed25519 \S+\n$/);
    assert.ok(!text.includes('127.0.0.1'));
    const lookup = (await KnownHosts.load([knownHosts])).lookup('127.0.0.1', box.port, lab.keys.host.publicKey);
    assert.equal(lookup.status, 'match');
  });

  test('the same key on file under another name is listed in the question', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', `# other names\nold-name.example,10.9.8.7 ${formatOpenSshPublicKey(lab.keys.host.publicKey)}\n`);
    let question: HostKeyQuestion | undefined;
    const client = await connect({
      ...direct(lab, box),
      knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask: (q) => ((question = q), true) },
    });
    await client.end();
    assert.deepEqual(question?.otherNames, [{ file: knownHosts, line: 2, hosts: 'old-name.example,10.9.8.7', hashed: false }]);
    assert.equal(readFileSync(knownHosts, 'utf8').split('\n')[2], lab.knownHostsLine(box.port));
  });

  test('readyTimeout does not run while the question waits for an answer', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const knownHosts = lab.writeFile('known_hosts', '');
    const slowYes = async (): Promise<boolean> => {
      await new Promise((r) => setTimeout(r, 1500));
      return true;
    };
    const started = Date.now();
    const client = await connect({ ...direct(lab, box), readyTimeout: 1000, knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask: slowYes } });
    assert.ok(Date.now() - started >= 1500);
    assert.equal((await client.exec('whoami')).stdout.toString(), 'alice\n');
    await client.end();
    // The network part still times out: a server that never answers.
    const silent = (await import('node:net')).createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    t.after(() => silent.close());
    const port = (silent.address() as { port: number }).port;
    await assert.rejects(connect({ ...direct(lab, box), port, readyTimeout: 300, knownHosts: { policy: 'ask', ask: slowYes } }), /timed out after 300 ms/);
  });

  test('a changed key is refused without asking', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const other = await generatePrivateKey('ed25519');
    const before = `[127.0.0.1]:${box.port} ${formatOpenSshPublicKey(other.publicKey)}\n`;
    const knownHosts = lab.writeFile('known_hosts', before);
    let asked = 0;
    await assert.rejects(
      connect({ ...direct(lab, box), knownHosts: { files: [knownHosts], globalFiles: [], policy: 'ask', ask: () => (asked++, true) } }),
      (error: unknown) => error instanceof HostKeyError && /has changed/.test(error.message),
    );
    assert.equal(asked, 0);
    assert.equal(readFileSync(knownHosts, 'utf8'), before);
  });

  test('from ssh_config: StrictHostKeyChecking ask calls knownHosts.ask; BatchMode yes never does; through a jump host the address is unknown', async (t) => {
    const lab = await configLab(t);
    const box = await lab.startServer('box');
    const jump = await lab.startServer('jump');
    const knownHosts = lab.writeFile('known_hosts', `${lab.knownHostsLine(jump.port)}\n`);
    const config = lab.writeFile(
      'config',
      [
        'Host batch',
        '  BatchMode yes',
        'Host inner',
        '  ProxyJump gateway',
        'Host gateway',
        `  Port ${jump.port}`,
        'Host *',
        '  HostName 127.0.0.1',
        `  Port ${box.port}`,
        '  User alice',
        `  IdentityFile ${lab.userKeyFile}`,
        '  IdentityAgent none',
        `  UserKnownHostsFile ${knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  HashKnownHosts no',
        // No StrictHostKeyChecking line: ask is ssh's default.
        '',
      ].join('\n'),
    );
    const questions: HostKeyQuestion[] = [];
    const knownHostsOptions = { ask: (q: HostKeyQuestion) => (questions.push(q), false) };
    await assert.rejects(connect({ host: 'batch', sshConfig: config, knownHosts: knownHostsOptions }), (error: unknown) => {
      assert.ok(error instanceof HostKeyError);
      assert.match(error.message, /StrictHostKeyChecking is ask, but there is no one to ask/);
      return true;
    });
    assert.equal(questions.length, 0, 'BatchMode never asks');
    await assert.rejects(connect({ host: 'inner', sshConfig: config, knownHosts: knownHostsOptions }), HostKeyError);
    assert.equal(questions.length, 1);
    assert.equal(questions[0]!.name, `[127.0.0.1]:${box.port}`);
    assert.equal(questions[0]!.address, undefined, 'reached through a channel of the jump host, not over TCP');
    assert.equal(jump.logins.length, 1, 'the jump host was known and logged in to');
    assert.equal(readFileSync(knownHosts, 'utf8'), `${lab.knownHostsLine(jump.port)}\n`);
  });
});
