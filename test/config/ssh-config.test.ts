import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { cipherAlgorithms, kexAlgorithms, macAlgorithms, signatureAlgorithms } from '../../src/algorithms/registry.js';
import {
  clientTokens,
  expandClientPath,
  formatSshConfig,
  knownSshKeywords,
  loadSshConfig,
  parseForwardSpec,
  parseJumpHost,
  parseSshConfig,
  resolveHost,
  type ResolveHostOptions,
  type SshOptions,
} from '../../src/config/ssh-config.js';
import { ConfigError } from '../../src/config/tokens.js';
import { havePeers, peerPath } from '../helpers/peers.js';

const scratch = mkdtempSync(join(tmpdir(), 'tssh-ssh-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fixed local side, so tokens are predictable. */
const LOCAL: ResolveHostOptions = { localUser: 'me', home: '/home/me', localHostname: 'laptop.example.net', uid: 1000 };

function resolve(text: string, host: string, options: ResolveHostOptions = {}): SshOptions {
  return resolveHost(parseSshConfig(text, { file: '/home/me/.ssh/config', home: '/home/me' }), host, { ...LOCAL, ...options });
}

function assertConfigError(fn: () => unknown, message: string): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.message, message);
  return caught;
}

describe('ssh_config defaults', () => {
  test('an empty config gives OpenSSH defaults for the destination', () => {
    const o = resolve('', 'Server.Example.COM');
    assert.equal(o.host, 'Server.Example.COM');
    assert.equal(o.hostName, 'server.example.com');
    assert.equal(o.port, 22);
    assert.equal(o.user, 'me');
    assert.deepEqual(o.identityFile, ['~/.ssh/id_rsa', '~/.ssh/id_ecdsa', '~/.ssh/id_ecdsa_sk', '~/.ssh/id_ed25519', '~/.ssh/id_ed25519_sk']);
    assert.equal(o.identitiesOnly, false);
    assert.equal(o.identityAgent, null);
    assert.deepEqual(o.certificateFile, []);
    assert.equal(o.proxyJump, null);
    assert.equal(o.proxyCommand, null);
    assert.deepEqual([o.localForward, o.remoteForward, o.dynamicForward], [[], [], []]);
    assert.equal(o.strictHostKeyChecking, 'ask');
    assert.deepEqual(o.userKnownHostsFile, ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']);
    assert.deepEqual(o.globalKnownHostsFile, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
    assert.equal(o.hashKnownHosts, false);
    assert.equal(o.serverAliveInterval, 0);
    assert.equal(o.serverAliveCountMax, 3);
    assert.equal(o.connectTimeout, null);
    assert.equal(o.connectionAttempts, 1);
    assert.deepEqual(o.ciphers, cipherAlgorithms.defaults);
    assert.deepEqual(o.macs, macAlgorithms.defaults);
    assert.deepEqual(o.kexAlgorithms, kexAlgorithms.defaults);
    assert.deepEqual(o.hostKeyAlgorithms, signatureAlgorithms.defaults);
    assert.deepEqual(o.pubkeyAcceptedAlgorithms, signatureAlgorithms.defaults);
    assert.deepEqual(o.preferredAuthentications, ['publickey', 'keyboard-interactive', 'password']);
    assert.equal(o.passwordAuthentication, true);
    assert.equal(o.kbdInteractiveAuthentication, true);
    assert.equal(o.pubkeyAuthentication, 'yes');
    assert.equal(o.forwardAgent, false);
    assert.deepEqual([o.setEnv, o.sendEnv], [[], []]);
    assert.equal(o.requestTTY, 'auto');
    assert.equal(o.batchMode, false);
    assert.equal(o.logLevel, 'INFO');
    assert.equal(o.compression, false);
    assert.equal(o.exitOnForwardFailure, false);
    assert.deepEqual(o.addKeysToAgent, { mode: 'no', lifetime: null });
    assert.equal(o.numberOfPasswordPrompts, 3);
    assert.deepEqual(o.rekeyLimit, { bytes: 0, seconds: 0 });
    assert.deepEqual(o.notes, []);
  });

  test('an IP address keeps its case; the command line user and port win', () => {
    assert.equal(resolve('', 'FE80::1').hostName, 'FE80::1');
    const o = resolve('User alice\nPort 2200', 'h', { user: 'bob', port: 2222 });
    assert.equal(o.user, 'bob');
    assert.equal(o.port, 2222);
  });
});

describe('ssh_config typed keywords', () => {
  const sample = `
Host sample
  HostName %h.example.com
  Port 2022
  User deploy
  IdentityFile ~/.ssh/id_deploy
  IdentityFile /keys/%u/%r@%h
  IdentitiesOnly yes
  IdentityAgent ~/.ssh/agent.sock
  CertificateFile ~/.ssh/id_deploy-cert.pub
  ProxyJump jump@bastion.example.com:2222,ssh://ops@[2001:db8::7]:22
  LocalForward 8080 localhost:80
  RemoteForward 0.0.0.0:9000 /run/app.sock
  DynamicForward 1080
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/.ssh/known_hosts.d/%k /etc/ssh/extra_known_hosts
  GlobalKnownHostsFile none
  HashKnownHosts true
  ServerAliveInterval 1m
  ServerAliveCountMax 5
  ConnectTimeout 10s
  ConnectionAttempts 3
  Ciphers ^aes256-gcm@openssh.com
  MACs -hmac-sha2-512*
  KexAlgorithms curve25519-sha256,diffie-hellman-group14-sha256
  HostKeyAlgorithms +ssh-rsa
  PubkeyAcceptedAlgorithms ssh-ed25519
  PreferredAuthentications publickey,password
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  PubkeyAuthentication host-bound
  ForwardAgent $SSH_AUTH_SOCK
  SetEnv TERM=xterm-256color FOO="bar baz"
  SendEnv LANG LC_*
  RequestTTY force
  BatchMode yes
  LogLevel DEBUG2
  Compression yes
  ExitOnForwardFailure yes
  AddKeysToAgent confirm 1h
  NumberOfPasswordPrompts 1
  RekeyLimit 512M 30m
  HostKeyAlias sample-alias
  GatewayPorts yes
  RemoteCommand tmux new -A -s main
  Tag work
`;

  test('each is parsed into its typed field', () => {
    const o = resolve(sample, 'sample');
    assert.equal(o.hostName, 'sample.example.com');
    assert.equal(o.port, 2022);
    assert.equal(o.user, 'deploy');
    assert.deepEqual(o.identityFile, ['~/.ssh/id_deploy', '/keys/%u/%r@%h']);
    assert.equal(o.identitiesOnly, true);
    assert.equal(o.identityAgent, '~/.ssh/agent.sock');
    assert.deepEqual(o.certificateFile, ['~/.ssh/id_deploy-cert.pub']);
    assert.deepEqual(o.proxyJump, [
      { user: 'jump', host: 'bastion.example.com', port: 2222 },
      { user: 'ops', host: '2001:db8::7', port: 22 },
    ]);
    assert.equal(o.proxyCommand, null);
    assert.deepEqual(o.localForward, [{ listen: { host: null, port: 8080 }, connect: { host: 'localhost', port: 80 } }]);
    assert.deepEqual(o.remoteForward, [{ listen: { host: '0.0.0.0', port: 9000 }, connect: { path: '/run/app.sock' } }]);
    assert.deepEqual(o.dynamicForward, [{ listen: { host: null, port: 1080 }, connect: null }]);
    assert.equal(o.strictHostKeyChecking, 'accept-new');
    assert.deepEqual(o.userKnownHostsFile, ['~/.ssh/known_hosts.d/%k', '/etc/ssh/extra_known_hosts']);
    assert.deepEqual(o.globalKnownHostsFile, ['none']);
    assert.equal(o.hashKnownHosts, true);
    assert.equal(o.serverAliveInterval, 60);
    assert.equal(o.serverAliveCountMax, 5);
    assert.equal(o.connectTimeout, 10);
    assert.equal(o.connectionAttempts, 3);
    assert.deepEqual(o.ciphers, ['aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr']);
    assert.deepEqual(o.macs, ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-256']);
    assert.deepEqual(o.kexAlgorithms, ['curve25519-sha256', 'diffie-hellman-group14-sha256']);
    assert.deepEqual(o.hostKeyAlgorithms, [...signatureAlgorithms.defaults, 'ssh-rsa']);
    assert.deepEqual(o.pubkeyAcceptedAlgorithms, ['ssh-ed25519']);
    assert.deepEqual(o.preferredAuthentications, ['publickey', 'password']);
    assert.equal(o.passwordAuthentication, false);
    assert.equal(o.kbdInteractiveAuthentication, false);
    assert.equal(o.pubkeyAuthentication, 'host-bound');
    assert.equal(o.forwardAgent, '$SSH_AUTH_SOCK');
    assert.deepEqual(o.setEnv, [
      { name: 'TERM', value: 'xterm-256color' },
      { name: 'FOO', value: 'bar baz' },
    ]);
    assert.deepEqual(o.sendEnv, ['LANG', 'LC_*']);
    assert.equal(o.requestTTY, 'force');
    assert.equal(o.batchMode, true);
    assert.equal(o.logLevel, 'DEBUG2');
    assert.equal(o.compression, true);
    assert.equal(o.exitOnForwardFailure, true);
    assert.deepEqual(o.addKeysToAgent, { mode: 'confirm', lifetime: 3600 });
    assert.equal(o.numberOfPasswordPrompts, 1);
    assert.deepEqual(o.rekeyLimit, { bytes: 512 * 1024 ** 2, seconds: 1800 });
    assert.equal(o.hostKeyAlias, 'sample-alias');
    assert.equal(o.gatewayPorts, true);
    assert.equal(o.remoteCommand, 'tmux new -A -s main');
    assert.equal(o.tag, 'work');
  });

  test('multi-valued spellings: StrictHostKeyChecking, RequestTTY, AddKeysToAgent, ForwardAgent, ConnectTimeout', () => {
    assert.equal(resolve('StrictHostKeyChecking off', 'h').strictHostKeyChecking, 'no');
    assert.equal(resolve('StrictHostKeyChecking false', 'h').strictHostKeyChecking, 'no');
    assert.equal(resolve('StrictHostKeyChecking true', 'h').strictHostKeyChecking, 'yes');
    assert.equal(resolve('StrictHostKeyChecking ask', 'h').strictHostKeyChecking, 'ask');
    assert.equal(resolve('RequestTTY no', 'h').requestTTY, 'no');
    assert.equal(resolve('RequestTTY auto', 'h').requestTTY, 'auto');
    assert.deepEqual(resolve('AddKeysToAgent 10m', 'h').addKeysToAgent, { mode: 'yes', lifetime: 600 });
    assert.deepEqual(resolve('AddKeysToAgent ask', 'h').addKeysToAgent, { mode: 'ask', lifetime: null });
    assert.equal(resolve('ForwardAgent yes', 'h').forwardAgent, true);
    assert.equal(resolve('ForwardAgent /run/agent.sock', 'h').forwardAgent, '/run/agent.sock');
    assert.equal(resolve('ConnectTimeout none', 'h').connectTimeout, null);
    assert.equal(resolve('PubkeyAuthentication false', 'h').pubkeyAuthentication, 'no');
    assert.equal(resolve('ChallengeResponseAuthentication no', 'h').kbdInteractiveAuthentication, false);
  });

  test('bad values are errors with file and line', () => {
    const file = '/home/me/.ssh/config';
    const parse = (text: string) => parseSshConfig(text, { file, home: '/home/me' });
    assertConfigError(() => parse('Host x\n  BatchMode maybe'), `${file} line 2: Bad yes/no argument: maybe`);
    assertConfigError(() => parse('Compression true'), `${file} line 1: Bad Compression argument: true (expected yes, no)`);
    assertConfigError(() => parse('Port 0'), `${file} line 1: Bad port '0'`);
    assertConfigError(() => parse('StrictHostKeyChecking sometimes'), `${file} line 1: Bad StrictHostKeyChecking argument: sometimes (expected yes, no, ask, accept-new)`);
    assertConfigError(() => parse('ProxyJump user@'), `${file} line 1: Invalid ProxyJump "user@"`);
    assertConfigError(() => parse('ServerAliveInterval soon'), `${file} line 1: Bad time value for ServerAliveInterval: soon`);
    assertConfigError(() => parse('AddKeysToAgent maybe'), `${file} line 1: Bad AddKeysToAgent argument: maybe`);
    assertConfigError(() => parse('AddKeysToAgent constructor'), `${file} line 1: Bad AddKeysToAgent argument: constructor`);
    assertConfigError(() => parse('ForwardAgent $1BAD'), `${file} line 1: Invalid environment name $1BAD`);
    assertConfigError(() => parse('UserKnownHostsFile none /x'), `${file} line 1: UserKnownHostsFile "none" argument must appear alone`);
    assertConfigError(() => parse('SendEnv A=B'), `${file} line 1: SendEnv: invalid environment name A=B`);
    assertConfigError(() => parse('Ciphers aes128-cbc'), `${file} line 1: Bad Ciphers: unsupported cipher: aes128-cbc`);
    assertConfigError(() => parse('HostKeyAlgorithms ssh-dss'), `${file} line 1: Bad HostKeyAlgorithms: unsupported host key algorithm: ssh-dss`);
    assertConfigError(() => parse('Port 22 23'), `${file} line 1: extra arguments at end of line for Port: 23`);
  });
});

describe('ssh_config Host blocks', () => {
  const text = `
# lines before any Host apply to every host
ServerAliveInterval 30

Host *.prod.example.com !db*.prod.example.com
  User prod
  Port 2200

Host web?.example.com
  User web

Host bastion
  HostName 192.0.2.10

Host * !bastion
  ProxyJump bastion
  User fallback
  Port 22
`;

  test('the first value obtained wins, across every matching block in order', () => {
    const o = resolve(text, 'app.prod.example.com');
    assert.equal(o.user, 'prod');
    assert.equal(o.port, 2200);
    assert.equal(o.serverAliveInterval, 30);
    assert.deepEqual(o.proxyJump, [{ user: null, host: 'bastion', port: null }]);
  });

  test('a matching negated pattern rules a block out', () => {
    const db = resolve(text, 'db1.prod.example.com');
    assert.equal(db.user, 'fallback');
    assert.equal(db.port, 22);
    const bastion = resolve(text, 'bastion');
    assert.equal(bastion.hostName, '192.0.2.10');
    assert.equal(bastion.proxyJump, null);
    assert.equal(bastion.user, 'me');
  });

  test('? matches exactly one character; patterns are case-sensitive', () => {
    assert.equal(resolve(text, 'web1.example.com').user, 'web');
    assert.equal(resolve(text, 'web10.example.com').user, 'fallback');
    assert.equal(resolve(text, 'WEB1.example.com').user, 'fallback');
  });

  test('keywords are case-insensitive and take "="', () => {
    const o = resolve('HOST=h\n  hostname = real.example\n  PORT=2000\n  user =x', 'h');
    assert.deepEqual([o.hostName, o.port, o.user], ['real.example', 2000, 'x']);
  });

  test('accumulating options add up across blocks; forwards and identity files drop duplicates', () => {
    const o = resolve(
      'Host h\n  IdentityFile ~/.ssh/a\n  LocalForward 1 x:1\n  SendEnv A B C\nHost *\n  IdentityFile ~/.ssh/b\n  IdentityFile ~/.ssh/a\n  LocalForward 1 x:1\n  LocalForward 2 x:2\n  SendEnv -B\n  CertificateFile ~/.ssh/c1\n  CertificateFile ~/.ssh/c2',
      'h',
      { identityFiles: ['/cmdline/key'] },
    );
    assert.deepEqual(o.identityFile, ['/cmdline/key', '~/.ssh/a', '~/.ssh/b']);
    assert.deepEqual(o.localForward.map((f) => ('port' in f.listen ? f.listen.port : 0)), [1, 2]);
    assert.deepEqual(o.sendEnv, ['A', 'C']);
    assert.deepEqual(o.certificateFile, ['~/.ssh/c1', '~/.ssh/c2']);
  });

  test('UserKnownHostsFile and SetEnv take their first line whole', () => {
    const o = resolve('UserKnownHostsFile /a /b\nUserKnownHostsFile /c\nSetEnv A=1\nSetEnv B=2', 'h');
    assert.deepEqual(o.userKnownHostsFile, ['/a', '/b']);
    assert.deepEqual(o.setEnv, [{ name: 'A', value: '1' }]);
  });

  test('ProxyCommand and ProxyJump: whichever comes first wins, none included', () => {
    assert.equal(resolve('ProxyCommand ssh -W %h:%p gw\nProxyJump j', 'h').proxyJump, null);
    assert.equal(resolve('ProxyCommand ssh -W %h:%p gw\nProxyJump j', 'h').proxyCommand, 'ssh -W %h:%p gw');
    assert.equal(resolve('ProxyJump j\nProxyCommand nc %h %p', 'h').proxyCommand, null);
    const none = resolve('Host h\n  ProxyJump none\nHost *\n  ProxyCommand nc %h %p', 'h');
    assert.deepEqual([none.proxyJump, none.proxyCommand], [null, null]);
  });

  test('ClearAllForwardings drops every forward', () => {
    const o = resolve('ClearAllForwardings yes\nLocalForward 1 x:1\nDynamicForward 2', 'h');
    assert.deepEqual([o.localForward, o.dynamicForward], [[], []]);
  });
});

describe('ssh_config Match', () => {
  test('host (after HostName), originalhost, user, localuser, all and negation', () => {
    const text = `
Host short
  HostName long.example.com
Match host long.example.com
  User from-match-host
Match originalhost other !localuser me
  Port 1
Match originalhost other localuser me
  Port 2
Match !host *.example.com user me
  Compression yes
Match all
  BatchMode yes
`;
    const short = resolve(text, 'short');
    assert.equal(short.user, 'from-match-host');
    assert.equal(short.batchMode, true);
    assert.equal(short.compression, false);
    const other = resolve(text, 'other');
    assert.equal(other.port, 2);
    assert.equal(other.compression, true);
  });

  test('Match user sees the user known so far (the command line first, then earlier lines)', () => {
    const text = 'Match user admin\n  Port 2\nHost h\n  User admin\nMatch user admin\n  Port 3';
    assert.equal(resolve(text, 'h').port, 3);
    assert.equal(resolve(text, 'h', { user: 'admin' }).port, 2);
  });

  test('Match exec runs a command with /bin/sh: exit 0 is a match, tokens are expanded', () => {
    const marker = join(scratch, 'exec-marker');
    writeFileSync(marker, '');
    const text = `
Match exec "test -e ${marker}"
  User exists
Match exec "test %h = target.example"
  Port 2001
Match exec "exit 1"
  Port 2002
Match exec false
  Compression yes
`;
    const o = resolveHost(parseSshConfig(text), 'target.example', LOCAL);
    assert.equal(o.user, 'exists');
    assert.equal(o.port, 2001);
    assert.equal(o.compression, false);
    assert.equal(resolveHost(parseSshConfig(text), 'elsewhere', LOCAL).port, 22);
  });

  test('Match exec is skipped once an earlier criterion failed; the runner can be replaced', () => {
    const ran: string[] = [];
    const exec = (command: string): boolean => {
      ran.push(command);
      return command.includes('yes');
    };
    const o = resolve('Match host nomatch exec "never %h"\n  Port 1\nMatch exec "yes %h %p %r %u %n %l %L %d %%"\n  Port 2', 'h', { exec });
    assert.equal(o.port, 2);
    assert.deepEqual(ran, ['yes h 22 me me h laptop.example.net laptop /home/me %']);
  });

  test('Match final: a second pass where Host lines see the final host name', () => {
    const text = `
Host alias
  HostName real.example.com
Host real.example.com
  User from-final-pass
Match final host real.example.com
  Port 2200
Match canonical all
  Compression yes
`;
    const o = resolve(text, 'alias');
    assert.equal(o.hostName, 'real.example.com');
    assert.equal(o.user, 'from-final-pass');
    assert.equal(o.port, 2200);
    assert.equal(o.compression, true);
    // The final pass does not expand the host name twice (a literal %% stays one %).
    const scoped = resolve('Host alias\n  HostName fe80::1%%eth0\nMatch final\n  User y', 'alias');
    assert.deepEqual([scoped.hostName, scoped.user], ['fe80::1%eth0', 'y']);
    // Without `Match final` there is only one pass.
    assert.equal(resolve('Host alias\n  HostName real\nHost real\n  User u', 'alias').user, 'me');
  });

  test('Match tagged and key=value criteria', () => {
    const o = resolve('Host h\n  Tag work\nMatch tagged=work\n  User worker', 'h');
    assert.equal(o.user, 'worker');
  });

  test('bad Match lines', () => {
    assertConfigError(() => parseSshConfig('Match colour blue', { file: 'c' }), 'c line 1: Unsupported Match attribute colour');
    assertConfigError(() => parseSshConfig('Match host', { file: 'c' }), 'c line 1: Missing Match criteria for host');
    assertConfigError(() => parseSshConfig('Match all host x', { file: 'c' }), "c line 1: 'all' cannot be combined with other Match attributes");
    assertConfigError(() => parseSshConfig('Match localnetwork 10.0.0.1/8', { file: 'c' }), "c line 1: Invalid Match localnetwork list '10.0.0.1/8'");
  });
});

describe('ssh_config Include', () => {
  const home = join(scratch, 'home');
  const sshDir = join(home, '.ssh');
  mkdirSync(join(sshDir, 'config.d'), { recursive: true });
  writeFileSync(join(sshDir, 'config.d', 'b.conf'), 'Host *\n  Port 2002\n  User b\n');
  writeFileSync(join(sshDir, 'config.d', 'a.conf'), 'Host included\n  User from-a\n');
  writeFileSync(join(sshDir, 'work.conf'), 'User work\nHost never\n  Compression yes\n');
  writeFileSync(join(sshDir, 'per-host-target'), 'User per-host\n');
  const system = join(scratch, 'etc-ssh');
  mkdirSync(system, { recursive: true });
  writeFileSync(join(system, 'system.conf'), 'Port 2003\n');

  const parseUser = (text: string) => parseSshConfig(text, { file: join(sshDir, 'config'), home });

  test('relative paths live in ~/.ssh, globs are sorted, Host lines inside do not leak', () => {
    const config = parseUser('Include config.d/*.conf\nHost included other\n  Port 1');
    assert.deepEqual(config.files, [join(sshDir, 'config'), join(sshDir, 'config.d', 'a.conf'), join(sshDir, 'config.d', 'b.conf')]);
    const included = resolveHost(config, 'included', LOCAL);
    assert.equal(included.user, 'from-a');
    assert.equal(included.port, 2002);
    assert.equal(resolveHost(config, 'other', LOCAL).user, 'b');
  });

  test('an Include inside a Host block only applies for that host; ~ paths work', () => {
    const config = parseUser('Host work\n  Include ~/.ssh/work.conf\nHost *\n  Compression no');
    const work = resolveHost(config, 'work', LOCAL);
    assert.equal(work.user, 'work');
    // The included file's `Host never` block does not apply, and it ends with the file.
    assert.equal(work.compression, false);
    assert.equal(resolveHost(config, 'play', LOCAL).user, 'me');
  });

  test('a path with % tokens is globbed per destination', () => {
    const config = parseUser('Include per-host-%h');
    assert.equal(resolveHost(config, 'target', LOCAL).user, 'per-host');
    assert.equal(resolveHost(config, 'other', LOCAL).user, 'me');
  });

  test('system files anchor relative includes in /etc/ssh and refuse ~', () => {
    const config = parseSshConfig('Include system.conf', { system: true, systemDir: system, file: '/etc/ssh/ssh_config' });
    assert.equal(resolveHost(config, 'h', LOCAL).port, 2003);
    assertConfigError(
      () => parseSshConfig('Include ~/x', { system: true, file: '/etc/ssh/ssh_config' }),
      '/etc/ssh/ssh_config line 1: bad include path ~/x (a system file may not use ~)',
    );
  });

  test('user config before system config: the user file wins', () => {
    const user = parseUser('Host *\n  User mine');
    const sys = parseSshConfig('User theirs\nPort 2022', { system: true, file: '/etc/ssh/ssh_config' });
    const o = resolveHost([user, sys], 'h', LOCAL);
    assert.deepEqual([o.user, o.port], ['mine', 2022]);
  });

  test('loadSshConfig reads a file, optionally tolerating its absence', () => {
    assert.equal(resolveHost(loadSshConfig(join(sshDir, 'work.conf'), { home }), 'x', LOCAL).user, 'work');
    assert.deepEqual(loadSshConfig(join(sshDir, 'missing'), { optional: true, home }).statements, []);
    assert.throws(() => loadSshConfig(join(sshDir, 'missing'), { home }), ConfigError);
  });
});

describe('ssh_config unknown and unimplemented keywords', () => {
  test('an unknown keyword is an error with file and line', () => {
    assertConfigError(() => parseSshConfig('Host x\n  Port 22\n  UseKeychain yes', { file: '/home/me/.ssh/config' }), '/home/me/.ssh/config line 3: unsupported option "UseKeychain"');
  });

  test('IgnoreUnknown patterns cover later unknown keywords, and only those', () => {
    const o = resolve('IgnoreUnknown UseKeychain,AddKeysToKeychain\nHost *\n  UseKeychain yes\n  usekeychain no', 'h');
    assert.deepEqual(o.notes, ['/home/me/.ssh/config line 3: ignored unknown option "UseKeychain"', '/home/me/.ssh/config line 4: ignored unknown option "usekeychain"']);
    assertConfigError(() => parseSshConfig('UseKeychain yes\nIgnoreUnknown UseKeychain', { file: 'c' }), 'c line 1: unsupported option "UseKeychain"');
    // IgnoreUnknown in a block that does not apply covers nothing for this host.
    assertConfigError(() => resolve('Host other\n  IgnoreUnknown Foo\nHost *\n  Foo bar', 'h'), '/home/me/.ssh/config line 4: unsupported option "Foo"');
  });

  test('keywords ssh knows but tssh does not implement are noted when they apply', () => {
    const o = resolve('Host h\n  ForwardX11 yes\n  ControlMaster auto\n  Protocol 2\nHost other\n  CheckHostIP yes', 'h');
    assert.deepEqual(o.notes, ['/home/me/.ssh/config line 2: tssh does not implement ForwardX11', '/home/me/.ssh/config line 3: tssh does not implement ControlMaster']);
    const keywords = knownSshKeywords();
    for (const k of ['forwardx11', 'controlmaster', 'controlpath', 'canonicalizehostname', 'updatehostkeys', 'gssapiauthentication', 'pkcs11provider', 'obscurekeystroketiming', 'channeltimeout', 'enableescapecommandline', 'knownhostscommand', 'sessiontype', 'stdinnull', 'gssapikeyexchange']) {
      assert.ok(keywords.includes(k), k);
    }
  });
});

describe('ssh_config -o overrides', () => {
  test('are read first and win over every file', () => {
    const o = resolve('Host h\n  Port 2200\n  User u', 'h', { overrides: ['Port=2300', 'User override'] });
    assert.deepEqual([o.port, o.user], [2300, 'override']);
  });

  test('Host, Match and Include are refused; unknown keywords too, unless IgnoreUnknown', () => {
    assertConfigError(() => resolve('', 'h', { overrides: ['Host x'] }), 'command-line line 1: Host directive not supported as a command-line option');
    assertConfigError(() => resolve('', 'h', { overrides: ['Port 1', 'Bogus 1'] }), 'command-line line 2: unsupported option "Bogus"');
    assert.equal(resolve('', 'h', { overrides: ['IgnoreUnknown Bogus', 'Bogus 1'] }).port, 22);
  });
});

describe('forwarding specifications', () => {
  test('local: [bind:]port:host:hostport, sockets, IPv6 in brackets', () => {
    assert.deepEqual(parseForwardSpec('8080:localhost:80', 'local'), { listen: { host: null, port: 8080 }, connect: { host: 'localhost', port: 80 } });
    assert.deepEqual(parseForwardSpec('127.0.0.1:8080:localhost:80', 'local'), { listen: { host: '127.0.0.1', port: 8080 }, connect: { host: 'localhost', port: 80 } });
    assert.deepEqual(parseForwardSpec('[::1]:8080:[2001:db8::1]:80', 'local'), { listen: { host: '::1', port: 8080 }, connect: { host: '2001:db8::1', port: 80 } });
    assert.deepEqual(parseForwardSpec('8080:/run/app.sock', 'local'), { listen: { host: null, port: 8080 }, connect: { path: '/run/app.sock' } });
    assert.deepEqual(parseForwardSpec('/tmp/l.sock:/run/r.sock', 'local'), { listen: { path: '/tmp/l.sock' }, connect: { path: '/run/r.sock' } });
    assert.deepEqual(parseForwardSpec('/tmp/l.sock:db:5432', 'local'), { listen: { path: '/tmp/l.sock' }, connect: { host: 'db', port: 5432 } });
    assert.deepEqual(parseForwardSpec('*:8080:localhost:80', 'local')?.listen, { host: '*', port: 8080 });
    assert.deepEqual(parseForwardSpec(':8080:localhost:80', 'local')?.listen, { host: null, port: 8080 });
  });

  test('dynamic: [bind:]port; remote may listen on port 0', () => {
    assert.deepEqual(parseForwardSpec('1080', 'dynamic'), { listen: { host: null, port: 1080 }, connect: null });
    assert.deepEqual(parseForwardSpec('localhost:1080', 'dynamic'), { listen: { host: 'localhost', port: 1080 }, connect: null });
    assert.deepEqual(parseForwardSpec('0:localhost:22', 'remote'), { listen: { host: null, port: 0 }, connect: { host: 'localhost', port: 22 } });
    assert.deepEqual(parseForwardSpec('9001', 'remote-dynamic'), { listen: { host: null, port: 9001 }, connect: null });
  });

  test('malformed specifications', () => {
    for (const [spec, kind] of [
      ['8080', 'local'],
      ['0:localhost:80', 'local'],
      ['8080:localhost:0', 'local'],
      ['8080:localhost:http', 'local'],
      ['70000:localhost:80', 'local'],
      ['[::1:8080:x:1', 'local'],
      ['a:b:c:d:e', 'local'],
      ['1:2:3', 'dynamic'],
    ] as const) {
      assert.equal(parseForwardSpec(spec, kind), undefined, `${kind} ${spec}`);
    }
  });

  test('config lines: the two arguments, RemoteForward alone is dynamic, errors name the line', () => {
    const o = resolve('LocalForward 127.0.0.1:3000 db:5432\nRemoteForward 9001\nDynamicForward [::1]:1080', 'h');
    assert.deepEqual(o.localForward, [{ listen: { host: '127.0.0.1', port: 3000 }, connect: { host: 'db', port: 5432 } }]);
    assert.deepEqual(o.remoteForward, [{ listen: { host: null, port: 9001 }, connect: null }]);
    assert.deepEqual(o.dynamicForward, [{ listen: { host: '::1', port: 1080 }, connect: null }]);
    assertConfigError(() => parseSshConfig('\nLocalForward 8080', { file: 'c' }), 'c line 2: Missing target argument for LocalForward');
    assertConfigError(() => parseSshConfig('LocalForward 8080 nowhere', { file: 'c' }), 'c line 1: Bad forwarding specification: 8080 nowhere');
  });

  test('ProxyJump hops', () => {
    assert.deepEqual(parseJumpHost('host'), { user: null, host: 'host', port: null });
    assert.deepEqual(parseJumpHost('u@host:2222'), { user: 'u', host: 'host', port: 2222 });
    assert.deepEqual(parseJumpHost('a@b@host'), { user: 'a@b', host: 'host', port: null });
    assert.deepEqual(parseJumpHost('[2001:db8::1]:22'), { user: null, host: '2001:db8::1', port: 22 });
    assert.deepEqual(parseJumpHost('ssh://u@h:2200'), { user: 'u', host: 'h', port: 2200 });
    for (const bad of ['', 'u@', 'h:0', 'h:x', 'ssh://h/path']) assert.equal(parseJumpHost(bad), undefined, bad);
  });
});

describe('token and path expansion', () => {
  test('IdentityFile tokens: ~ %d %u %h %r %p %l %L %n %k %i %%', () => {
    const o = resolve('Host db\n  HostName db.internal\n  User admin\n  Port 2200\n  IdentityFile ~/.ssh/%r@%h-%p\n  IdentityFile %d/keys/%u-%l-%L-%n-%k-%i-100%%', 'db');
    assert.deepEqual(
      o.identityFile.map((p) => expandClientPath(p, o)),
      ['/home/me/.ssh/admin@db.internal-2200', '/home/me/keys/me-laptop.example.net-laptop-db-db-1000-100%'],
    );
  });

  test('%C is the SHA-1 of %l%h%p%r%j; %j is the last ProxyJump hop', () => {
    const o = resolve('Host h\n  ProxyJump a@first,second:2222', 'h');
    const tokens = clientTokens(o);
    assert.equal(tokens.j, 'second');
    assert.equal(tokens.C, createHash('sha1').update('laptop.example.net' + 'h' + '22' + 'me' + 'second').digest('hex'));
  });

  test('${VAR} comes from the environment; an unknown token is an error', () => {
    const o = resolve('IdentityFile ${KEYDIR}/id', 'h');
    assert.equal(expandClientPath(o.identityFile[0]!, o, { KEYDIR: '/vault' }), '/vault/id');
    assert.throws(() => expandClientPath('${NOPE}/id', o, {}), /NOPE is not set/);
    assert.throws(() => expandClientPath('~/%Q', o), /unknown token %Q/);
  });
});

describe('ssh -G style output', () => {
  test('formatSshConfig prints lower-case keywords, forwards as ssh does', () => {
    const o = resolve('Host h\n  HostName h.example\n  LocalForward 8080 localhost:80\n  DynamicForward 1080\n  RemoteForward 9000 /run/s.sock\n  ProxyJump u@j:2222', 'h');
    const lines = formatSshConfig(o).trimEnd().split('\n');
    for (const expected of ['host h', 'user me', 'hostname h.example', 'port 22', 'localforward 8080 [localhost]:80', 'dynamicforward 1080', 'remoteforward 9000 /run/s.sock', 'proxyjump u@j:2222', 'userknownhostsfile /home/me/.ssh/known_hosts /home/me/.ssh/known_hosts2']) {
      assert.ok(lines.includes(expected), `missing "${expected}"`);
    }
  });
});

describe('agreement with OpenSSH ssh -G', () => {
  const sample = `
Host * !bastion
  ProxyJump admin@bastion:2222,[2001:db8::1]:22

Host web* db?
  User deploy
  Port 2022
  IdentityFile ~/.ssh/id_%r@%h
  IdentityFile /keys/%u-%p
  LocalForward 127.0.0.1:8080 localhost:80
  LocalForward [::1]:8443 [2001:db8::5]:443
  RemoteForward 9000 localhost:9000
  RemoteForward 9100 /run/app.sock
  DynamicForward localhost:1080

Host db1
  HostName db1.internal
  IdentityFile ~/.ssh/db_key

Match originalhost web2 user deploy
  HostName web2.internal
  Port 3022

Host bastion
  HostName 192.0.2.10
  User jump

Host *
  User nobody
  IdentityFile ~/.ssh/id_ed25519
  UserKnownHostsFile ~/.ssh/known_hosts ~/.ssh/known_hosts.d/%h
  ProxyCommand nc %h %p
`;

  const compared = ['user', 'hostname', 'port', 'identityfile', 'localforward', 'remoteforward', 'dynamicforward', 'proxyjump', 'proxycommand', 'userknownhostsfile'];

  function lines(text: string): Map<string, string[]> {
    const map = new Map<string, string[]>();
    for (const line of text.trim().split('\n')) {
      const space = line.indexOf(' ');
      const key = line.slice(0, space);
      if (compared.includes(key)) map.set(key, [...(map.get(key) ?? []), line.slice(space + 1)]);
    }
    return map;
  }

  test('hostname, port, user, identity files, forwards and proxies agree', (t) => {
    if (!havePeers(t, 'ssh')) return;
    const path = join(scratch, 'ssh_config_sample');
    writeFileSync(path, sample);
    // ssh takes ~ and %d from the password database, not $HOME.
    const home = userInfo().homedir;
    const config = loadSshConfig(path, { home });
    for (const host of ['web1', 'db1', 'web2', 'bastion', 'elsewhere.example.org', 'Mixed.Case']) {
      const out = execFileSync(peerPath('ssh'), ['-G', '-F', path, host], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const theirs = lines(out);
      const mine = lines(formatSshConfig(resolveHost(config, host, { home })));
      for (const key of ['user', 'hostname', 'port', 'identityfile']) assert.ok(theirs.has(key), `ssh -G printed no ${key}`);
      for (const key of compared) assert.deepEqual(mine.get(key), theirs.get(key), `${host}: ${key}`);
    }
  });

  test('token expansion agrees with ssh\'s expansion of ControlPath', (t) => {
    if (!havePeers(t, 'ssh')) return;
    const path = join(scratch, 'ssh_config_tokens');
    writeFileSync(path, 'Host alias\n  HostName Real.Example.org\n  User remote\n  Port 2200\n');
    // %j is left out: OpenSSH 9.2 does not know it, and %C only covers the jump host from 9.6.
    const pattern = '/tmp/%C_%L_%l_%h_%p_%r_%u_%n_%d_%i_%k_%%';
    for (const host of ['alias', 'other.example']) {
      const out = execFileSync(peerPath('ssh'), ['-G', '-F', path, '-o', `ControlPath=${pattern}`, host], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const theirs = /^controlpath (.*)$/m.exec(out)?.[1];
      const home = userInfo().homedir;
      const mine = resolveHost(loadSshConfig(path, { home }), host, { home });
      assert.equal(expandClientPath(pattern, mine), theirs, host);
    }
  });
});
