import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cipherAlgorithms, kexAlgorithms, macAlgorithms, signatureAlgorithms } from '../../src/algorithms/registry.js';
import {
  expandAuthorizedKeysFile,
  expandSshdTokens,
  formatSshdConfig,
  knownSshdKeywords,
  listenEndpoints,
  loadSshdConfig,
  parseSshdConfig,
  resolveForConnection,
  type SshdSettings,
} from '../../src/config/sshd-config.js';
import { ConfigError, parseSize, parseTime } from '../../src/config/tokens.js';
import { haveRoot, havePeers, peerPath } from '../helpers/peers.js';

const scratch = mkdtempSync(join(tmpdir(), 'tssh-sshd-config-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Parse text as if it were the file `/etc/ssh/sshd_config`. */
function parse(text: string, overrides: string[] = []) {
  return parseSshdConfig(text, { file: '/etc/ssh/sshd_config', overrides, includeBaseDir: scratch, cwd: '/srv' });
}

function settings(text: string, overrides: string[] = []): SshdSettings {
  return parse(text, overrides).settings;
}

/** Assert that parsing throws a ConfigError with exactly this message. */
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

describe('sshd_config defaults', () => {
  test('an empty file gives OpenSSH defaults', () => {
    const s = settings('');
    assert.deepEqual(s.port, [22]);
    assert.deepEqual(s.listenAddress, []);
    assert.deepEqual(s.hostKey, ['/etc/ssh/ssh_host_rsa_key', '/etc/ssh/ssh_host_ecdsa_key', '/etc/ssh/ssh_host_ed25519_key']);
    assert.deepEqual(s.authorizedKeysFile, ['.ssh/authorized_keys', '.ssh/authorized_keys2']);
    assert.equal(s.pubkeyAuthentication, true);
    assert.equal(s.passwordAuthentication, true);
    assert.equal(s.kbdInteractiveAuthentication, true);
    assert.equal(s.usePAM, false);
    assert.equal(s.authenticationMethods, 'any');
    assert.equal(s.permitRootLogin, 'prohibit-password');
    assert.equal(s.permitEmptyPasswords, false);
    assert.equal(s.strictModes, true);
    assert.equal(s.maxAuthTries, 6);
    assert.equal(s.maxSessions, 10);
    assert.deepEqual(s.maxStartups, { start: 10, rate: 30, full: 100 });
    assert.equal(s.loginGraceTime, 120);
    assert.equal(s.clientAliveInterval, 0);
    assert.equal(s.clientAliveCountMax, 3);
    assert.deepEqual(s.kexAlgorithms, kexAlgorithms.defaults);
    assert.deepEqual(s.ciphers, cipherAlgorithms.defaults);
    assert.deepEqual(s.macs, macAlgorithms.defaults);
    assert.deepEqual(s.hostKeyAlgorithms, signatureAlgorithms.defaults);
    assert.deepEqual(s.pubkeyAcceptedAlgorithms, signatureAlgorithms.defaults);
    assert.deepEqual(s.rekeyLimit, { bytes: 0, seconds: 0 });
    assert.deepEqual(s.subsystem, []);
    assert.equal(s.forceCommand, null);
    assert.equal(s.chrootDirectory, null);
    assert.equal(s.allowTcpForwarding, 'yes');
    assert.equal(s.allowStreamLocalForwarding, 'yes');
    assert.equal(s.allowAgentForwarding, true);
    assert.equal(s.gatewayPorts, 'no');
    assert.deepEqual(s.permitOpen, ['any']);
    assert.deepEqual(s.permitListen, ['any']);
    assert.deepEqual(s.acceptEnv, []);
    assert.deepEqual(s.setEnv, []);
    assert.equal(s.permitUserEnvironment, false);
    assert.equal(s.banner, null);
    assert.equal(s.printMotd, true);
    assert.equal(s.pidFile, '/run/sshd.pid');
    assert.equal(s.logLevel, 'INFO');
    assert.equal(s.syslogFacility, 'AUTH');
    assert.deepEqual([s.allowUsers, s.denyUsers, s.allowGroups, s.denyGroups], [[], [], [], []]);
    assert.equal(s.passwordFile, null);
  });

  test('defaultPort replaces 22 when no Port is configured', () => {
    assert.deepEqual(parseSshdConfig('', { defaultPort: 2222 }).settings.port, [2222]);
    assert.deepEqual(parseSshdConfig('Port 2200', { defaultPort: 2222 }).settings.port, [2200]);
  });
});

describe('sshd_config typed keywords', () => {
  const sample = `
# every typed keyword, once
Port 2200
ListenAddress 127.0.0.1
ListenAddress [::1]:2201
ListenAddress ::1 rdomain 7
AddressFamily inet
HostKey /etc/tssh/host_ed25519
HostKey keys/host_rsa
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u
PubkeyAuthentication no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
AuthenticationMethods publickey,password keyboard-interactive:pam
PermitRootLogin forced-commands-only
PermitEmptyPasswords yes
StrictModes no
MaxAuthTries 3
MaxSessions 4
MaxStartups 5:50:20
LoginGraceTime 1m30s
ClientAliveInterval 15
ClientAliveCountMax 5
KexAlgorithms curve25519-sha256
Ciphers aes256-gcm@openssh.com,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com
HostKeyAlgorithms ssh-ed25519
PubkeyAcceptedAlgorithms ssh-ed25519,rsa-sha2-512
RekeyLimit 1G 1h
Subsystem sftp internal-sftp
Subsystem backup /usr/local/bin/backup --mode "full copy"
ForceCommand /usr/bin/restricted "an argument"
ChrootDirectory /srv/chroot/%u
AllowTcpForwarding local
AllowStreamLocalForwarding no
AllowAgentForwarding no
DisableForwarding yes
GatewayPorts clientspecified
PermitOpen localhost:80 [::1]:443 db:*
PermitListen 8080 localhost:9000
AcceptEnv LANG LC_*
SetEnv SHLVL=1 TZ=UTC
PermitUserEnvironment LANG,LC_*
PermitTTY no
Banner /etc/issue.net
PrintMotd no
PidFile tsshd.pid
LogLevel VERBOSE
SyslogFacility LOCAL3
AllowUsers alice bob@10.0.0.*
DenyUsers mallory
AllowGroups staff
DenyGroups guests
Compression no
RevokedKeys /etc/ssh/revoked
RequiredRSASize 2048
RefuseConnection no
PasswordFile /etc/tssh/passwd
`;

  test('each is parsed into its typed field', () => {
    const s = settings(sample);
    assert.deepEqual(s.port, [2200]);
    assert.deepEqual(s.listenAddress, [
      { host: '127.0.0.1', port: null, rdomain: null },
      { host: '::1', port: 2201, rdomain: null },
      { host: '::1', port: null, rdomain: '7' },
    ]);
    assert.equal(s.addressFamily, 'inet');
    // Relative host key paths are made absolute, as sshd does (cwd /srv in these tests).
    assert.deepEqual(s.hostKey, ['/etc/tssh/host_ed25519', '/srv/keys/host_rsa']);
    assert.deepEqual(s.authorizedKeysFile, ['.ssh/authorized_keys', '/etc/ssh/keys/%u']);
    assert.equal(s.pubkeyAuthentication, false);
    assert.equal(s.passwordAuthentication, false);
    assert.equal(s.kbdInteractiveAuthentication, false);
    assert.equal(s.usePAM, true);
    assert.deepEqual(s.authenticationMethods, [['publickey', 'password'], ['keyboard-interactive:pam']]);
    assert.equal(s.permitRootLogin, 'forced-commands-only');
    assert.equal(s.permitEmptyPasswords, true);
    assert.equal(s.strictModes, false);
    assert.equal(s.maxAuthTries, 3);
    assert.equal(s.maxSessions, 4);
    assert.deepEqual(s.maxStartups, { start: 5, rate: 50, full: 20 });
    assert.equal(s.loginGraceTime, 90);
    assert.equal(s.clientAliveInterval, 15);
    assert.equal(s.clientAliveCountMax, 5);
    assert.deepEqual(s.kexAlgorithms, ['curve25519-sha256']);
    assert.deepEqual(s.ciphers, ['aes256-gcm@openssh.com', 'aes128-ctr']);
    assert.deepEqual(s.macs, ['hmac-sha2-512-etm@openssh.com']);
    assert.deepEqual(s.hostKeyAlgorithms, ['ssh-ed25519']);
    assert.deepEqual(s.pubkeyAcceptedAlgorithms, ['ssh-ed25519', 'rsa-sha2-512']);
    assert.deepEqual(s.rekeyLimit, { bytes: 1024 ** 3, seconds: 3600 });
    assert.deepEqual(s.subsystem, [
      { name: 'sftp', command: 'internal-sftp' },
      { name: 'backup', command: '/usr/local/bin/backup --mode "full copy"' },
    ]);
    assert.equal(s.forceCommand, '/usr/bin/restricted "an argument"');
    assert.equal(s.chrootDirectory, '/srv/chroot/%u');
    assert.equal(s.allowTcpForwarding, 'local');
    assert.equal(s.allowStreamLocalForwarding, 'no');
    assert.equal(s.allowAgentForwarding, false);
    assert.equal(s.disableForwarding, true);
    assert.equal(s.gatewayPorts, 'clientspecified');
    assert.deepEqual(s.permitOpen, ['localhost:80', '[::1]:443', 'db:*']);
    assert.deepEqual(s.permitListen, ['*:8080', 'localhost:9000']);
    assert.deepEqual(s.acceptEnv, ['LANG', 'LC_*']);
    assert.deepEqual(s.setEnv, [
      { name: 'SHLVL', value: '1' },
      { name: 'TZ', value: 'UTC' },
    ]);
    assert.equal(s.permitUserEnvironment, 'LANG,LC_*');
    assert.equal(s.permitTTY, false);
    assert.equal(s.banner, '/etc/issue.net');
    assert.equal(s.printMotd, false);
    assert.equal(s.pidFile, '/srv/tsshd.pid');
    assert.equal(s.logLevel, 'VERBOSE');
    assert.equal(s.syslogFacility, 'LOCAL3');
    assert.deepEqual(s.allowUsers, ['alice', 'bob@10.0.0.*']);
    assert.deepEqual(s.denyUsers, ['mallory']);
    assert.deepEqual(s.allowGroups, ['staff']);
    assert.deepEqual(s.denyGroups, ['guests']);
    assert.equal(s.compression, false);
    assert.equal(s.revokedKeys, '/etc/ssh/revoked');
    assert.equal(s.requiredRSASize, 2048);
    assert.equal(s.refuseConnection, false);
    assert.equal(s.passwordFile, '/etc/tssh/passwd');
  });

  test('old names and spellings: ChallengeResponseAuthentication, without-password, all, delayed, PubkeyAcceptedKeyTypes', () => {
    const s = settings(
      [
        'ChallengeResponseAuthentication no',
        'PermitRootLogin without-password',
        'AllowTcpForwarding all',
        'Compression delayed',
        'PubkeyAcceptedKeyTypes ssh-ed25519',
        'HostDSAKey /etc/ssh/old_key',
      ].join('\n'),
    );
    assert.equal(s.kbdInteractiveAuthentication, false);
    assert.equal(s.permitRootLogin, 'prohibit-password');
    assert.equal(s.allowTcpForwarding, 'yes');
    assert.equal(s.compression, true);
    assert.deepEqual(s.pubkeyAcceptedAlgorithms, ['ssh-ed25519']);
    assert.deepEqual(s.hostKey, ['/etc/ssh/old_key']);
  });

  test('none clears the optional paths and commands', () => {
    const s = settings('ForceCommand none\nChrootDirectory none\nBanner none\nPidFile none\nPasswordFile none');
    assert.deepEqual([s.forceCommand, s.chrootDirectory, s.banner, s.pidFile, s.passwordFile], [null, null, null, null, null]);
  });

  test('MaxStartups with one number is both the start and the limit', () => {
    assert.deepEqual(settings('MaxStartups 5').maxStartups, { start: 5, rate: 30, full: 5 });
    assertConfigError(
      () => parse('MaxStartups 20:30:10'),
      '/etc/ssh/sshd_config line 1: Invalid MaxStartups spec: 20:30:10 (expected start:rate:full with start <= full and rate 1-100)',
    );
  });

  test('AuthenticationMethods: any must stand alone, method names are checked', () => {
    assertConfigError(() => parse('AuthenticationMethods any publickey'), '/etc/ssh/sshd_config line 1: "any" must appear alone in AuthenticationMethods');
    assertConfigError(
      () => parse('AuthenticationMethods publickey,fingerprint'),
      '/etc/ssh/sshd_config line 1: invalid AuthenticationMethods method "fingerprint" (known: publickey, password, keyboard-interactive, hostbased, gssapi-with-mic)',
    );
  });

  test('PermitOpen entries need a host and a port', () => {
    assertConfigError(() => parse('PermitOpen localhost'), '/etc/ssh/sshd_config line 1: PermitOpen bad port number in localhost');
    assertConfigError(() => parse('PermitOpen any localhost:22'), '/etc/ssh/sshd_config line 1: any must appear alone on a PermitOpen line');
  });
});

describe('sshd_config first value wins, some keywords add up', () => {
  test('a single-valued keyword keeps its first value', () => {
    const s = settings('PasswordAuthentication no\nPasswordAuthentication yes\nLoginGraceTime 30\nLoginGraceTime 60\nCiphers aes128-ctr\nCiphers aes256-ctr');
    assert.equal(s.passwordAuthentication, false);
    assert.equal(s.loginGraceTime, 30);
    assert.deepEqual(s.ciphers, ['aes128-ctr']);
  });

  test('Port, ListenAddress, HostKey, AcceptEnv and the allow/deny lists add up', () => {
    const s = settings(
      'Port 22\nPort 2222\nHostKey /k1\nHostKey /k2\nListenAddress 10.0.0.1\nListenAddress 10.0.0.2:2200\nAcceptEnv LANG\nAcceptEnv TZ LC_*\nAllowUsers a\nAllowUsers b c\nDenyUsers x\nDenyUsers y\nAllowGroups g1\nAllowGroups g2\nDenyGroups d1\nDenyGroups d2',
    );
    assert.deepEqual(s.port, [22, 2222]);
    assert.deepEqual(s.hostKey, ['/k1', '/k2']);
    assert.deepEqual(s.acceptEnv, ['LANG', 'TZ', 'LC_*']);
    assert.deepEqual(s.allowUsers, ['a', 'b', 'c']);
    assert.deepEqual(s.denyUsers, ['x', 'y']);
    assert.deepEqual(s.allowGroups, ['g1', 'g2']);
    assert.deepEqual(s.denyGroups, ['d1', 'd2']);
    // A ListenAddress without a port listens on every Port.
    assert.deepEqual(listenEndpoints(s), [
      { host: '10.0.0.1', port: 22 },
      { host: '10.0.0.1', port: 2222 },
      { host: '10.0.0.2', port: 2200 },
    ]);
  });

  test('AuthorizedKeysFile, SetEnv, PermitOpen and PermitListen take their first line whole', () => {
    const s = settings('AuthorizedKeysFile a b\nAuthorizedKeysFile c\nSetEnv A=1 B=2 A=3\nSetEnv C=3\nPermitOpen h:1 h:2\nPermitOpen h:3\nPermitListen 1\nPermitListen 2');
    assert.deepEqual(s.authorizedKeysFile, ['a', 'b']);
    // Within a line, the first setting of a name wins too.
    assert.deepEqual(s.setEnv, [
      { name: 'A', value: '1' },
      { name: 'B', value: '2' },
    ]);
    assert.deepEqual(s.permitOpen, ['h:1', 'h:2']);
    assert.deepEqual(s.permitListen, ['*:1']);
  });

  test('Subsystem keeps the first command for each name', () => {
    const s = settings('Subsystem sftp internal-sftp\nSubsystem sftp /usr/lib/openssh/sftp-server\nSubsystem netconf /usr/bin/netconf');
    assert.deepEqual(s.subsystem, [
      { name: 'sftp', command: 'internal-sftp' },
      { name: 'netconf', command: '/usr/bin/netconf' },
    ]);
  });
});

describe('sshd_config -o overrides', () => {
  test('are read first, so they win over the file', () => {
    const s = settings('PasswordAuthentication yes\nMaxAuthTries 6\nPort 22', ['PasswordAuthentication no', 'MaxAuthTries=2', 'Port 2222']);
    assert.equal(s.passwordAuthentication, false);
    assert.equal(s.maxAuthTries, 2);
    // Port adds up: the override's port comes first, the file's follows (as with sshd -o Port=…).
    assert.deepEqual(s.port, [2222, 22]);
  });

  test('-p style ports replace the file\'s Port lines', () => {
    assert.deepEqual(parseSshdConfig('Port 22\nPort 23', { ports: [2222] }).settings.port, [2222]);
  });

  test('errors in an override name the command line', () => {
    assertConfigError(() => parse('', ['PasswordAuthentication maybe']), 'command-line line 1: Bad yes/no argument: maybe');
    assertConfigError(() => parse('', ['Port 22', 'Match User x']), 'command-line line 2: Match is not supported as a command-line option');
    assertConfigError(() => parse('', ['Include /etc/ssh/x']), 'command-line line 1: Include is not supported as a command-line option');
  });
});

describe('sshd_config syntax', () => {
  test('keywords are case-insensitive and take "=" with or without spaces', () => {
    const s = settings('pOrT 2201\nPASSWORDAUTHENTICATION=no\nMaxAuthTries = 4\nLoginGraceTime= 10\nmaxsessions =3');
    assert.deepEqual(s.port, [2201]);
    assert.equal(s.passwordAuthentication, false);
    assert.equal(s.maxAuthTries, 4);
    assert.equal(s.loginGraceTime, 10);
    assert.equal(s.maxSessions, 3);
  });

  test('quoted arguments keep their spaces; comments, blank lines and CRLF are ignored', () => {
    const s = settings('# a comment\r\n\r\n   \r\nBanner "/etc/my banner"  # trailing comment\r\nAuthorizedKeysFile "/keys/with space/%u" \'/other keys\'\r\nAcceptEnv A#B\r\n');
    assert.equal(s.banner, '/etc/my banner');
    assert.deepEqual(s.authorizedKeysFile, ['/keys/with space/%u', '/other keys']);
    // A # inside a word is an ordinary character.
    assert.deepEqual(s.acceptEnv, ['A#B']);
  });

  test('an unterminated quote, a missing argument and extra arguments are errors', () => {
    assertConfigError(() => parse('Banner "/etc/issue'), '/etc/ssh/sshd_config line 1: invalid quotes');
    assertConfigError(() => parse('\nPasswordAuthentication'), '/etc/ssh/sshd_config line 2: no argument after keyword "PasswordAuthentication"');
    assertConfigError(() => parse('MaxAuthTries 3 4'), '/etc/ssh/sshd_config line 1: extra arguments at end of line for MaxAuthTries: 4');
  });

  test('a bad yes/no value is an error naming file and line', () => {
    const text = ['Port 22', '', '# comment', 'UsePAM no', 'PubkeyAuthentication yes', 'StrictModes yes', 'PasswordAuthentication maybe'].join('\n');
    const err = assertConfigError(() => parseSshdConfig(text, { file: '/path/sshd_config' }), '/path/sshd_config line 7: Bad yes/no argument: maybe');
    assert.equal(err.file, '/path/sshd_config');
    assert.equal(err.line, 7);
    assert.equal(err.problem, 'Bad yes/no argument: maybe');
    assert.equal(err.code, 'ERR_TSSH_CONFIG');
  });

  test('an unknown keyword is an error naming file and line', () => {
    assertConfigError(() => parse('Port 22\nFoo bar'), '/etc/ssh/sshd_config line 2: unsupported option "Foo"');
  });

  test('other bad values', () => {
    assertConfigError(() => parse('PermitRootLogin sometimes'), '/etc/ssh/sshd_config line 1: Bad PermitRootLogin argument: sometimes (expected yes, prohibit-password, forced-commands-only, no)');
    assertConfigError(() => parse('PermitRootLogin constructor'), '/etc/ssh/sshd_config line 1: Bad PermitRootLogin argument: constructor (expected yes, prohibit-password, forced-commands-only, no)');
    assertConfigError(() => parse('Port 70000'), '/etc/ssh/sshd_config line 1: Bad port number: 70000');
    assertConfigError(() => parse('MaxAuthTries lots'), '/etc/ssh/sshd_config line 1: Bad MaxAuthTries value: lots (expected a whole number from 0 to 2147483647)');
    assertConfigError(() => parse('LogLevel LOUD'), "/etc/ssh/sshd_config line 1: unsupported log level 'LOUD'");
    assertConfigError(() => parse('SyslogFacility KERN'), "/etc/ssh/sshd_config line 1: unsupported log facility 'KERN'");
    assertConfigError(() => parse('AcceptEnv A=B'), '/etc/ssh/sshd_config line 1: AcceptEnv: invalid environment name A=B');
    assertConfigError(() => parse('SetEnv NOVALUE'), '/etc/ssh/sshd_config line 1: Invalid SetEnv: NOVALUE (expected NAME=value)');
    assertConfigError(() => parse('ListenAddress 1.2.3.4:http'), '/etc/ssh/sshd_config line 1: bad port number in ListenAddress: 1.2.3.4:http');
    assertConfigError(() => parse('Subsystem sftp'), '/etc/ssh/sshd_config line 1: Missing subsystem command for Subsystem sftp');
  });
});

describe('sshd_config time and size formats', () => {
  test('times: seconds, units, combinations', () => {
    assert.equal(parseTime('120'), 120);
    assert.equal(parseTime('2m'), 120);
    assert.equal(parseTime('1h30m'), 5400);
    assert.equal(parseTime('1H30M10'), 5410);
    assert.equal(parseTime('1d'), 86400);
    assert.equal(parseTime('2w'), 1209600);
    assert.equal(parseTime('0'), 0);
    for (const bad of ['', 'm', '1x', '1.5h', '-1', '1h 30m']) assert.equal(parseTime(bad), undefined, bad);
    assert.equal(settings('LoginGraceTime 1h30m').loginGraceTime, 5400);
    assert.equal(settings('ClientAliveInterval 2m').clientAliveInterval, 120);
    assertConfigError(() => parse('LoginGraceTime 2x'), '/etc/ssh/sshd_config line 1: Bad time value for LoginGraceTime: 2x');
  });

  test('sizes: bytes and binary units', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('1K'), 1024);
    assert.equal(parseSize('512M'), 512 * 1024 ** 2);
    assert.equal(parseSize('1G'), 1024 ** 3);
    assert.equal(parseSize('1.5K'), 1536);
    assert.equal(parseSize('2g'), 2 * 1024 ** 3);
    for (const bad of ['', 'G', '1X', '1 G', '-1']) assert.equal(parseSize(bad), undefined, bad);
  });

  test('RekeyLimit: size, optional time, default and none', () => {
    assert.deepEqual(settings('RekeyLimit 512M').rekeyLimit, { bytes: 512 * 1024 ** 2, seconds: 0 });
    assert.deepEqual(settings('RekeyLimit 1G 1h30m').rekeyLimit, { bytes: 1024 ** 3, seconds: 5400 });
    assert.deepEqual(settings('RekeyLimit default none').rekeyLimit, { bytes: 0, seconds: 0 });
    assert.deepEqual(settings('RekeyLimit default 10m').rekeyLimit, { bytes: 0, seconds: 600 });
    assertConfigError(() => parse('RekeyLimit lots'), '/etc/ssh/sshd_config line 1: Bad RekeyLimit size: lots');
    assertConfigError(() => parse('RekeyLimit 8'), '/etc/ssh/sshd_config line 1: RekeyLimit too small: 8');
    assertConfigError(() => parse('RekeyLimit 1G soon'), '/etc/ssh/sshd_config line 1: Bad time value for RekeyLimit: soon');
  });
});

describe('sshd_config algorithm lists', () => {
  test('+ appends, - removes (with wildcards), ^ puts first, a plain list replaces', () => {
    assert.deepEqual(settings('Ciphers +aes128-ctr').ciphers, cipherAlgorithms.defaults);
    assert.deepEqual(settings('MACs +hmac-sha1').macs, [...macAlgorithms.defaults, 'hmac-sha1']);
    assert.deepEqual(settings('Ciphers -aes*-ctr').ciphers, ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
    assert.deepEqual(settings('KexAlgorithms ^diffie-hellman-group14-sha256').kexAlgorithms[0], 'diffie-hellman-group14-sha256');
    assert.deepEqual(settings('HostKeyAlgorithms +ssh-rsa').hostKeyAlgorithms.at(-1), 'ssh-rsa');
    assert.deepEqual(settings('PubkeyAcceptedAlgorithms -ecdsa-*').pubkeyAcceptedAlgorithms, ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256']);
  });

  test('an unknown algorithm is an error', () => {
    assertConfigError(() => parse('\nCiphers aes128-ctr,des-cbc'), '/etc/ssh/sshd_config line 2: Bad Ciphers: unsupported cipher: des-cbc');
    assertConfigError(() => parse('KexAlgorithms +sntrup761x25519-sha512'), '/etc/ssh/sshd_config line 1: Bad KexAlgorithms: unsupported key exchange algorithm: sntrup761x25519-sha512');
    assertConfigError(() => parse('MACs umac-64@openssh.com'), '/etc/ssh/sshd_config line 1: Bad MACs: unsupported MAC: umac-64@openssh.com');
  });
});

describe('sshd_config ignored keywords', () => {
  test('every other keyword sshd 9.x knows is accepted with one warning line each', () => {
    const config = parse('UseDNS no\nPrintLastLog no\nX11Forwarding yes\nTCPKeepAlive yes\nMatch User alice\n  X11Forwarding no\n  PermitTunnel yes');
    assert.deepEqual(config.warnings, [
      '/etc/ssh/sshd_config line 1: tsshd ignores UseDNS',
      '/etc/ssh/sshd_config line 2: tsshd ignores PrintLastLog',
      '/etc/ssh/sshd_config line 3: tsshd ignores X11Forwarding',
      '/etc/ssh/sshd_config line 4: tsshd ignores TCPKeepAlive',
      '/etc/ssh/sshd_config line 6: tsshd ignores X11Forwarding',
      '/etc/ssh/sshd_config line 7: tsshd ignores PermitTunnel',
    ]);
    assert.deepEqual(config.ignored[0], { keyword: 'UseDNS', file: '/etc/ssh/sshd_config', line: 1, args: ['no'] });
  });

  test('the table covers servconf.c: a sample of OpenSSH 9.x keywords all parse', () => {
    const keywords = knownSshdKeywords();
    for (const k of ['usedns', 'printlastlog', 'x11forwarding', 'tcpkeepalive', 'gssapiauthentication', 'kerberosauthentication', 'trustedusercakeys', 'authorizedkeyscommand', 'channeltimeout', 'unusedconnectiontimeout', 'persourcepenalties', 'sshdsessionpath', 'hostcertificate', 'ipqos', 'versionaddendum', 'modulifile', 'protocol', 'useprivilegeseparation', 'debianbanner']) {
      assert.ok(keywords.includes(k), k);
    }
    assert.equal(keywords.length, new Set(keywords).size);
  });

  test('an ignored keyword that OpenSSH forbids in Match is an error there too', () => {
    assertConfigError(() => parse('Match User alice\n  UseDNS no'), '/etc/ssh/sshd_config line 2: Directive UseDNS is not allowed within a Match block');
  });
});

describe('sshd_config Match blocks', () => {
  const text = `
PasswordAuthentication yes
AllowUsers alice bob carol
X11Forwarding no

Match User alice Address 10.0.0.0/8
  PasswordAuthentication no
  ForceCommand /usr/bin/only-this
  AllowUsers alice

Match User bob,carol
  PasswordAuthentication no
  PermitRootLogin no
  Banner /etc/bob-banner

Match User *,!carol
  Banner /etc/everyone-but-carol
  MaxAuthTries 2

Match Address 192.168.1.0/24,!192.168.1.13 LocalPort 2222
  AllowTcpForwarding no

Match Group wheel
  PermitRootLogin yes

Match Host *.example.com
  ClientAliveInterval 30

Match all
  LogLevel DEBUG1
`;

  test('outside any match the global values hold; Match all returns to global lines', () => {
    const config = parse(text);
    assert.equal(config.settings.passwordAuthentication, true);
    assert.equal(config.settings.forceCommand, null);
    // `Match all` lines are global again (sshd applies them at start-up).
    assert.equal(config.settings.logLevel, 'DEBUG1');
    assert.equal(config.matchBlocks.length, 7);
  });

  test('Match User and Address must both match; the block then overrides, lists replaced', () => {
    const config = parse(text);
    const inside = resolveForConnection(config, { user: 'alice', address: '10.1.2.3' });
    assert.equal(inside.passwordAuthentication, false);
    assert.equal(inside.forceCommand, '/usr/bin/only-this');
    assert.deepEqual(inside.allowUsers, ['alice']);
    const outside = resolveForConnection(config, { user: 'alice', address: '172.16.0.1' });
    assert.equal(outside.passwordAuthentication, true);
    assert.equal(outside.forceCommand, null);
    assert.deepEqual(outside.allowUsers, ['alice', 'bob', 'carol']);
  });

  test('the first matching block to set a keyword wins; negation in user lists', () => {
    const config = parse(text);
    const bob = resolveForConnection(config, { user: 'bob', address: '10.0.0.1' });
    assert.equal(bob.banner, '/etc/bob-banner');
    assert.equal(bob.maxAuthTries, 2);
    assert.equal(bob.permitRootLogin, 'no');
    const carol = resolveForConnection(config, { user: 'carol', address: '10.0.0.1' });
    assert.equal(carol.banner, '/etc/bob-banner');
    assert.equal(carol.maxAuthTries, 6);
    const dave = resolveForConnection(config, { user: 'dave', address: '10.0.0.1' });
    assert.equal(dave.banner, '/etc/everyone-but-carol');
    assert.equal(dave.passwordAuthentication, true);
  });

  test('Match Address with a negated entry, LocalPort, Group and Host', () => {
    const config = parse(text);
    assert.equal(resolveForConnection(config, { address: '192.168.1.5', localPort: 2222 }).allowTcpForwarding, 'no');
    assert.equal(resolveForConnection(config, { address: '192.168.1.13', localPort: 2222 }).allowTcpForwarding, 'yes');
    assert.equal(resolveForConnection(config, { address: '192.168.1.5', localPort: 22 }).allowTcpForwarding, 'yes');
    // IPv4-mapped IPv6, as a dual-stack Node server reports IPv4 clients.
    assert.equal(resolveForConnection(config, { address: '::ffff:192.168.1.5', localPort: 2222 }).allowTcpForwarding, 'no');
    assert.equal(resolveForConnection(config, { user: 'dave', groups: ['users', 'wheel'] }).permitRootLogin, 'yes');
    assert.equal(resolveForConnection(config, { user: 'dave', groups: ['users'] }).permitRootLogin, 'prohibit-password');
    // Without the facts a criterion needs, it does not match.
    assert.equal(resolveForConnection(config, { user: 'dave' }).permitRootLogin, 'prohibit-password');
    assert.equal(resolveForConnection(config, { host: 'build.example.com' }).clientAliveInterval, 30);
    assert.equal(resolveForConnection(config, { host: 'BUILD.Example.COM' }).clientAliveInterval, 30);
    assert.equal(resolveForConnection(config, { host: 'example.org' }).clientAliveInterval, 0);
  });

  test('Match criteria syntax: key=value, Invalid-User, errors', () => {
    const config = parse('Match User=alice\n  MaxSessions 1\nMatch Invalid-User\n  MaxAuthTries 1');
    assert.equal(resolveForConnection(config, { user: 'alice' }).maxSessions, 1);
    assert.equal(resolveForConnection(config, { user: 'nobody', invalidUser: true }).maxAuthTries, 1);
    assertConfigError(() => parse('Match Colour blue'), '/etc/ssh/sshd_config line 1: Unsupported Match attribute Colour');
    assertConfigError(() => parse('Match User'), '/etc/ssh/sshd_config line 1: Missing Match criteria for User');
    assertConfigError(() => parse('Match all User x'), "/etc/ssh/sshd_config line 1: 'all' cannot be combined with other Match attributes");
    assertConfigError(() => parse('Match Address 10.0.0.1/8'), "/etc/ssh/sshd_config line 1: Invalid Match Address argument '10.0.0.1/8'");
    assertConfigError(() => parse('Match LocalPort ssh'), "/etc/ssh/sshd_config line 1: Invalid LocalPort 'ssh' on Match line");
  });

  test('global-only keywords are refused inside Match', () => {
    assertConfigError(() => parse('Match User alice\n  Port 2222'), '/etc/ssh/sshd_config line 2: Directive Port is not allowed within a Match block');
    assertConfigError(() => parse('Match User alice\n  Ciphers aes128-ctr'), '/etc/ssh/sshd_config line 2: Directive Ciphers is not allowed within a Match block');
  });

  test('-o overrides win globally, but a matching block still overrides them (as in sshd)', () => {
    const config = parse(text, ['PasswordAuthentication no', 'MaxAuthTries 9']);
    assert.equal(config.settings.passwordAuthentication, false);
    assert.equal(resolveForConnection(config, { user: 'dave', address: '10.0.0.1' }).maxAuthTries, 2);
  });
});

describe('sshd_config Include', () => {
  const dir = join(scratch, 'include');
  mkdirSync(join(dir, 'sshd_config.d'), { recursive: true });
  writeFileSync(join(dir, 'sshd_config.d', '20-second.conf'), 'MaxAuthTries 2\nMaxSessions 2\n');
  writeFileSync(join(dir, 'sshd_config.d', '10-first.conf'), 'MaxAuthTries 1\nMatch User alice\n  Banner /from-include\n');
  writeFileSync(join(dir, 'sshd_config.d', 'ignored.txt'), 'MaxSessions 99\n');
  writeFileSync(join(dir, 'sshd_config.d', '.hidden.conf'), 'MaxSessions 98\n');
  writeFileSync(join(dir, 'match-body.conf'), 'PasswordAuthentication no\nMatch User bob\n  PermitTTY no\n');
  writeFileSync(join(dir, 'bad.conf'), '\n\nBogusKeyword 1\n');

  test('globs are expanded in sorted order, relative to the include directory (/etc/ssh for sshd)', () => {
    const config = parseSshdConfig('Include sshd_config.d/*.conf\nMaxAuthTries 5\nMaxSessions 5\nLoginGraceTime 7', {
      file: join(dir, 'sshd_config'),
      includeBaseDir: dir,
    });
    assert.equal(config.settings.maxAuthTries, 1);
    assert.equal(config.settings.maxSessions, 2);
    assert.equal(config.settings.loginGraceTime, 7);
    assert.deepEqual(config.files, [join(dir, 'sshd_config'), join(dir, 'sshd_config.d', '10-first.conf'), join(dir, 'sshd_config.d', '20-second.conf')]);
    // A Match in an included file ends with that file.
    assert.equal(resolveForConnection(config, { user: 'alice' }).banner, '/from-include');
    assert.equal(resolveForConnection(config, { user: 'alice' }).loginGraceTime, 7);
  });

  test('absolute paths, several arguments, and patterns matching nothing', () => {
    const config = parse(`Include ${join(dir, 'sshd_config.d', '20-*')} ${join(dir, 'nothing-*.conf')}`);
    assert.equal(config.settings.maxAuthTries, 2);
  });

  test('an Include inside a Match block belongs to that block', () => {
    const config = parseSshdConfig('Match Address 10.0.0.0/8\n  Include match-body.conf\nMaxSessions 3', { includeBaseDir: dir });
    assert.equal(config.settings.passwordAuthentication, true);
    assert.equal(resolveForConnection(config, { address: '10.0.0.1' }).passwordAuthentication, false);
    assert.equal(resolveForConnection(config, { address: '10.0.0.1', user: 'bob' }).permitTTY, false);
    // The included file's own Match is ANDed with the enclosing one.
    assert.equal(resolveForConnection(config, { address: '172.16.0.1', user: 'bob' }).permitTTY, true);
  });

  test('errors inside an included file name that file', () => {
    assertConfigError(() => parseSshdConfig('Include bad.conf', { includeBaseDir: dir }), `${join(dir, 'bad.conf')} line 3: unsupported option "BogusKeyword"`);
  });

  test('loadSshdConfig reads a file', () => {
    const path = join(dir, 'sshd_config');
    writeFileSync(path, 'Port 2022\n');
    assert.deepEqual(loadSshdConfig(path).settings.port, [2022]);
    assertConfigError(() => loadSshdConfig(join(dir, 'missing')), `${join(dir, 'missing')} line 0: cannot read config file: ENOENT: no such file or directory, open '${join(dir, 'missing')}'`);
  });
});

describe('AuthorizedKeysFile expansion', () => {
  const who = { home: '/home/alice', user: 'alice', uid: 1000 };

  test('the defaults are relative to the home directory', () => {
    assert.deepEqual(
      settings('').authorizedKeysFile.map((p) => expandAuthorizedKeysFile(p, who)),
      ['/home/alice/.ssh/authorized_keys', '/home/alice/.ssh/authorized_keys2'],
    );
  });

  test('%h %u %U %% and ~', () => {
    assert.equal(expandAuthorizedKeysFile('/etc/ssh/keys/%u', who), '/etc/ssh/keys/alice');
    assert.equal(expandAuthorizedKeysFile('%h/.ssh/keys', who), '/home/alice/.ssh/keys');
    assert.equal(expandAuthorizedKeysFile('/keys/%U/100%%', who), '/keys/1000/100%');
    assert.equal(expandAuthorizedKeysFile('~/.ssh/extra', who), '/home/alice/.ssh/extra');
    assert.equal(expandSshdTokens('/srv/chroot/%u', who), '/srv/chroot/alice');
    assert.throws(() => expandAuthorizedKeysFile('/keys/%x', who), /unknown token %x/);
  });
});

describe('tsshd -T output', () => {
  test('prints one lower-case keyword per line', () => {
    const out = formatSshdConfig(settings('Port 2222\nPasswordAuthentication no\nSubsystem sftp internal-sftp\nAcceptEnv LANG LC_*\nAuthenticationMethods publickey,password\nRekeyLimit 1G 1h'));
    const lines = out.trimEnd().split('\n');
    for (const expected of [
      'port 2222',
      'listenaddress [::]:2222',
      'listenaddress 0.0.0.0:2222',
      'passwordauthentication no',
      'subsystem sftp internal-sftp',
      'acceptenv LANG',
      'acceptenv LC_*',
      'authenticationmethods publickey,password',
      'rekeylimit 1073741824 3600',
      'maxstartups 10:30:100',
      'permitopen any',
      'authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2',
    ]) {
      assert.ok(lines.includes(expected), `missing "${expected}" in:\n${out}`);
    }
    assert.ok(lines.every((l) => /^[a-z]+ \S/.test(l)), out);
  });
});

describe('agreement with OpenSSH sshd -T', () => {
  const sample = (hostKey: string): string => `
Port 2200
Port 2201
HostKey ${hostKey}
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
MaxAuthTries 4
MaxSessions 5
MaxStartups 3:40:9
LoginGraceTime 1m30s
ClientAliveInterval 1h
ClientAliveCountMax 7
Ciphers aes256-gcm@openssh.com,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256
KexAlgorithms curve25519-sha256,diffie-hellman-group16-sha512
RekeyLimit 512M 30m
Subsystem sftp internal-sftp
AllowTcpForwarding remote
GatewayPorts clientspecified
PermitOpen localhost:80 db:5432
AcceptEnv LANG LC_*
AcceptEnv TZ
SetEnv SHLVL=1 A=b
AllowUsers alice bob
DenyUsers mallory
LogLevel VERBOSE
SyslogFacility LOCAL2
UseDNS no
X11Forwarding yes
Match User alice
  PasswordAuthentication yes
  MaxAuthTries 2
  AllowUsers alice
Match Address 10.0.0.0/8
  Banner /etc/issue.net
  PermitOpen any
`;

  function sshdT(config: string, extra: string[]): Map<string, string[]> {
    const out = execFileSync(peerPath('sshd'), ['-T', '-f', config, ...extra], { encoding: 'utf8' });
    const map = new Map<string, string[]>();
    for (const line of out.trim().split('\n')) {
      const space = line.indexOf(' ');
      const key = line.slice(0, space);
      map.set(key, [...(map.get(key) ?? []), line.slice(space + 1)]);
    }
    return map;
  }

  /** Our values in sshd -T's text form, for the keywords compared. */
  function ours(s: SshdSettings): Map<string, string[]> {
    const map = new Map<string, string[]>();
    for (const line of formatSshdConfig(s).trim().split('\n')) {
      const space = line.indexOf(' ');
      const key = line.slice(0, space);
      map.set(key, [...(map.get(key) ?? []), line.slice(space + 1)]);
    }
    return map;
  }

  const compared = [
    'port', 'pubkeyauthentication', 'passwordauthentication', 'kbdinteractiveauthentication', 'permitrootlogin',
    'permitemptypasswords', 'maxauthtries', 'maxsessions', 'maxstartups', 'logingracetime', 'clientaliveinterval',
    'clientalivecountmax', 'ciphers', 'macs', 'kexalgorithms', 'rekeylimit', 'subsystem', 'allowtcpforwarding',
    'gatewayports', 'permitopen', 'acceptenv', 'setenv', 'allowusers', 'denyusers', 'loglevel', 'syslogfacility',
    'authorizedkeysfile', 'hostkey', 'banner',
  ];

  function compare(theirs: Map<string, string[]>, mine: Map<string, string[]>): void {
    for (const key of compared) {
      // sshd 9.2 prints prohibit-password by its older name.
      const normalise = (v: string): string => (key === 'permitrootlogin' && v === 'without-password' ? 'prohibit-password' : v);
      assert.ok(theirs.has(key), `sshd -T printed no ${key}`);
      assert.deepEqual(mine.get(key), theirs.get(key)!.map(normalise), key);
    }
  }

  test('global settings and -o overrides agree', (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    if (!haveRoot(t, 'sshd -T needs root')) return;
    const dir = mkdtempSync(join(scratch, 'sshd-T-'));
    const hostKey = join(dir, 'host_ed25519');
    execFileSync(peerPath('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const path = join(dir, 'sshd_config');
    writeFileSync(path, sample(hostKey));
    const overrides = ['MaxSessions=8', 'LogLevel ERROR'];
    const theirs = sshdT(path, overrides.flatMap((o) => ['-o', o]));
    const mine = loadSshdConfig(path, { overrides }).settings;
    compare(theirs, ours(mine));
    assert.deepEqual(mine.maxSessions, 8);
  });

  test('Match blocks agree with sshd -T -C for several connections', (t) => {
    if (!havePeers(t, 'sshd', 'ssh-keygen')) return;
    if (!haveRoot(t, 'sshd -T needs root')) return;
    const dir = mkdtempSync(join(scratch, 'sshd-T-C-'));
    const hostKey = join(dir, 'host_ed25519');
    execFileSync(peerPath('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const path = join(dir, 'sshd_config');
    writeFileSync(path, sample(hostKey));
    const config = loadSshdConfig(path);
    for (const conn of [
      { user: 'alice', address: '10.1.1.1' },
      { user: 'alice', address: '192.0.2.1' },
      { user: 'bob', address: '10.1.1.1' },
      { user: 'bob', address: '192.0.2.1' },
    ]) {
      const spec = `user=${conn.user},addr=${conn.address},host=client.example,laddr=127.0.0.1,lport=2200`;
      const theirs = sshdT(path, ['-C', spec]);
      const mine = resolveForConnection(config, { ...conn, host: 'client.example', localAddress: '127.0.0.1', localPort: 2200 });
      compare(theirs, ours(mine));
    }
  });
});
