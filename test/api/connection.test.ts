// The connection protocol end to end in one process: our client and our server over TCP on
// 127.0.0.1:0 (test/helpers/conn-lab.ts). Back-pressure both ways (200 MiB into a paused reader:
// the sender stalls at the 2 MiB window, memory stays flat, then every byte arrives, SHA-256
// compared), 100 concurrent channels on one connection, an abrupt TCP close from either side,
// a channel to a closed port, and requests the server refuses.
//
// The memory figures are printed as test diagnostics; see them with
//   node --test --test-reporter=spec dist/test/api/connection.test.js
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DEFAULT_WINDOW, ChannelOpenError } from '../../src/connection/mux.js';
import { ChannelOpenFailure } from '../../src/connection/messages.js';
import { ConnectionLostError, DisconnectError, DisconnectReason, SshError } from '../../src/errors.js';
import type { ServerSession } from '../../src/server-session.js';
import type { ClientSession } from '../../src/client-session.js';
import { startConnLab } from '../helpers/conn-lab.js';
import {
  HashSink,
  KiB,
  MiB,
  PatternSource,
  closedPort,
  memorySample,
  mib,
  patternBytes,
  roundTripOver,
  sha256,
  startEchoServer,
  waitUntil,
  type MemorySample,
} from '../helpers/conn-net.js';

const TOTAL = 200 * MiB;
const CHUNK = 64 * KiB;
/** The reader pauses once this much has arrived, so the pause starts with data flowing at full speed. */
const PAUSE_AT = 16 * MiB;
const PAUSE_MS = 2000;
/** ChannelStream's highWaterMark (both directions). */
const STREAM_HWM = 64 * KiB;
const MEMORY_LIMIT = 64 * MiB;

interface PauseReport {
  baseline: MemorySample;
  maxRssDelta: number;
  maxArrayBuffersDelta: number;
  maxHeapDelta: number;
  consumedAtPause: number;
  producedAtPause: number;
  producedHalfway: number;
  producedAtEnd: number;
  maxReaderBuffered: number;
  maxWriterBuffered: number;
  senderWindowAtEnd: number;
  receiverWindowAtEnd: number;
}

/** Samples memory and buffers every 50 ms while the reader is paused. */
async function observePause(probe: {
  produced: () => number;
  consumed: () => number;
  readerBuffered: () => number;
  writerBuffered: () => number;
  senderWindow: () => number;
  receiverWindow: () => number;
}): Promise<PauseReport> {
  const baseline = memorySample();
  const report: PauseReport = {
    baseline,
    maxRssDelta: 0,
    maxArrayBuffersDelta: 0,
    maxHeapDelta: 0,
    consumedAtPause: probe.consumed(),
    producedAtPause: probe.produced(),
    producedHalfway: 0,
    producedAtEnd: 0,
    maxReaderBuffered: 0,
    maxWriterBuffered: 0,
    senderWindowAtEnd: 0,
    receiverWindowAtEnd: 0,
  };
  const started = Date.now();
  let halfwayTaken = false;
  while (Date.now() - started < PAUSE_MS) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = memorySample();
    report.maxRssDelta = Math.max(report.maxRssDelta, now.rss - baseline.rss);
    report.maxArrayBuffersDelta = Math.max(report.maxArrayBuffersDelta, now.arrayBuffers - baseline.arrayBuffers);
    report.maxHeapDelta = Math.max(report.maxHeapDelta, now.heapUsed - baseline.heapUsed);
    report.maxReaderBuffered = Math.max(report.maxReaderBuffered, probe.readerBuffered());
    report.maxWriterBuffered = Math.max(report.maxWriterBuffered, probe.writerBuffered());
    if (!halfwayTaken && Date.now() - started >= PAUSE_MS / 2) {
      halfwayTaken = true;
      report.producedHalfway = probe.produced();
    }
  }
  report.producedAtEnd = probe.produced();
  report.senderWindowAtEnd = probe.senderWindow();
  report.receiverWindowAtEnd = probe.receiverWindow();
  assert.equal(probe.consumed(), report.consumedAtPause, 'the paused reader consumed nothing during the pause');
  return report;
}

function describeReport(direction: string, r: PauseReport): string {
  return (
    `${direction}: during the ${PAUSE_MS} ms pause rss +${mib(r.maxRssDelta)} (baseline ${mib(r.baseline.rss)}), ` +
    `arrayBuffers +${mib(r.maxArrayBuffersDelta)} (baseline ${mib(r.baseline.arrayBuffers)}), heapUsed +${mib(r.maxHeapDelta)}; ` +
    `produced ${mib(r.producedAtPause)} at the pause, ${mib(r.producedAtEnd)} at its end (reader had consumed ${mib(r.consumedAtPause)}); ` +
    `reader buffered at most ${r.maxReaderBuffered} bytes, writer at most ${r.maxWriterBuffered} bytes; ` +
    `windows at the end: sender ${r.senderWindowAtEnd}, receiver ${r.receiverWindowAtEnd}`
  );
}

/** What both directions must show while the reader is paused. */
function assertBounded(r: PauseReport): void {
  // The sender stopped: nothing more was produced in the second half of the pause…
  assert.equal(r.producedAtEnd, r.producedHalfway, 'the sender kept producing during the pause');
  // …because the window ran out: it can be ahead of the reader by at most the window plus what
  // the writable side buffers (its highWaterMark plus the chunk that crossed it).
  assert.equal(r.senderWindowAtEnd, 0, 'the sender is stalled on the window');
  assert.equal(r.receiverWindowAtEnd, 0, 'the receiver granted no more window while paused');
  assert.ok(
    r.producedAtEnd - r.consumedAtPause <= DEFAULT_WINDOW + STREAM_HWM + CHUNK,
    `sender ahead of the reader by ${r.producedAtEnd - r.consumedAtPause} bytes, more than the window + stream buffers`,
  );
  assert.ok(r.maxReaderBuffered <= DEFAULT_WINDOW, `the paused reader buffered ${r.maxReaderBuffered} bytes, more than the 2 MiB window`);
  assert.ok(r.maxWriterBuffered <= STREAM_HWM + CHUNK, `the writer buffered ${r.maxWriterBuffered} bytes, more than highWaterMark + one chunk`);
  assert.ok(r.maxRssDelta < MEMORY_LIMIT, `rss grew by ${mib(r.maxRssDelta)} during the pause`);
  assert.ok(r.maxArrayBuffersDelta < MEMORY_LIMIT, `arrayBuffers grew by ${mib(r.maxArrayBuffersDelta)} during the pause`);
}

/** Writes a PatternSource into a stream with back-pressure; resolves once all is handed over. */
function pump(source: PatternSource, stream: NodeJS.WritableStream, onDone: () => void): void {
  const step = (): void => {
    for (;;) {
      const chunk = source.next(CHUNK);
      if (!chunk) {
        onDone();
        return;
      }
      if (!stream.write(chunk)) {
        stream.once('drain', step);
        return;
      }
    }
  };
  step();
}

describe('back-pressure: a paused reader stops the sender at the window', { timeout: 120_000 }, () => {
  test('server → client: the server writes 200 MiB while the client reader is paused for 2 s; the server stalls at the 2 MiB window, memory stays flat, then all 200 MiB arrive in order (SHA-256)', async (t) => {
    let producer: PatternSource | undefined;
    let serverSession: ServerSession | undefined;
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command !== 'produce') return;
        serverSession = session;
        producer = new PatternSource('server-to-client', TOTAL);
        pump(producer, session, () => session.exit(0));
      },
    });
    const client = await lab.connect();
    const session = await client.execStream('produce');
    const exited = new Promise<number | undefined>((resolve) => session.once('exit', (exit: { code: number | undefined }) => resolve(exit.code)));
    const sink = new HashSink();
    let pausedOnce = false;
    const ended = new Promise<void>((resolve) => session.once('end', resolve));
    const paused = new Promise<void>((resolve) => {
      session.on('data', (chunk: Buffer) => {
        sink.update(chunk);
        if (!pausedOnce && sink.bytes >= PAUSE_AT) {
          pausedOnce = true;
          session.pause();
          resolve();
        }
      });
    });
    session.stderr.resume();
    await paused;
    const report = await observePause({
      produced: () => producer!.produced,
      consumed: () => sink.bytes,
      readerBuffered: () => session.readableLength,
      writerBuffered: () => serverSession!.writableLength,
      senderWindow: () => serverSession!.channel.remoteWindow,
      receiverWindow: () => session.channel.localWindow,
    });
    t.diagnostic(describeReport('server → client', report));
    assertBounded(report);
    session.resume();
    await ended;
    assert.equal(await exited, 0);
    assert.equal(sink.bytes, TOTAL);
    assert.equal(sink.digest(), producer!.digest(), 'SHA-256 of what the client read equals that of what the server wrote');
  });

  test('client → server: the client writes 200 MiB while the server reader is paused for 2 s; the client stalls at the 2 MiB window, memory stays flat, then all 200 MiB arrive in order (SHA-256)', async (t) => {
    let serverSession: ServerSession | undefined;
    let serverSink: HashSink | undefined;
    let resolvePaused!: () => void;
    const paused = new Promise<void>((resolve) => (resolvePaused = resolve));
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command !== 'consume') return;
        serverSession = session;
        const sink = (serverSink = new HashSink());
        let pausedOnce = false;
        session.on('data', (chunk: Buffer) => {
          sink.update(chunk);
          if (!pausedOnce && sink.bytes >= PAUSE_AT) {
            pausedOnce = true;
            session.pause();
            resolvePaused();
          }
        });
        session.on('end', () => {
          session.write(`${sink.bytes} ${sink.digest()}\n`);
          session.exit(0);
        });
      },
    });
    const client = await lab.connect();
    const session: ClientSession = await client.execStream('consume');
    const output: Buffer[] = [];
    session.on('data', (chunk: Buffer) => output.push(chunk));
    session.stderr.resume();
    const ended = new Promise<void>((resolve) => session.once('end', resolve));
    const exited = new Promise<number | undefined>((resolve) => session.once('exit', (exit: { code: number | undefined }) => resolve(exit.code)));
    const producer = new PatternSource('client-to-server', TOTAL);
    pump(producer, session, () => session.end());
    await paused;
    const report = await observePause({
      produced: () => producer.produced,
      consumed: () => serverSink!.bytes,
      readerBuffered: () => serverSession!.readableLength,
      writerBuffered: () => session.writableLength,
      senderWindow: () => session.channel.remoteWindow,
      receiverWindow: () => serverSession!.channel.localWindow,
    });
    t.diagnostic(describeReport('client → server', report));
    assertBounded(report);
    serverSession!.resume();
    await ended;
    assert.equal(await exited, 0);
    assert.equal(Buffer.concat(output).toString(), `${TOTAL} ${producer.digest()}\n`, 'the server read all 200 MiB with the SHA-256 the client wrote');
  });
});

describe('channels across key re-exchanges', { timeout: 120_000 }, () => {
  test('64 MiB each way at once on one channel while both sides re-key every few MiB (~20 re-exchanges): nothing stalls, both directions SHA-256 exact', async (t) => {
    const SIZE = 64 * MiB;
    let download: PatternSource | undefined;
    const lab = await startConnLab(t, {
      server: { rekeyBytes: 3 * MiB },
      exec: (session) => {
        const upload = new HashSink();
        session.on('data', (chunk: Buffer) => upload.update(chunk));
        download = new PatternSource('rekey-down', SIZE);
        let sent = false;
        let received = false;
        const finish = (): void => {
          if (sent && received) session.exit(0);
        };
        session.on('end', () => {
          session.stderr.write(`${upload.bytes} ${upload.digest()}\n`);
          received = true;
          finish();
        });
        pump(download, session, () => {
          sent = true;
          finish();
        });
      },
    });
    const client = await lab.connect({ rekeyBytes: 5 * MiB });
    let rekeys = 0;
    client.on('rekey', () => rekeys++);
    const session = await client.execStream('both-ways');
    const down = new HashSink();
    session.on('data', (chunk: Buffer) => down.update(chunk));
    const stderr: Buffer[] = [];
    session.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const ended = new Promise<void>((resolve) => session.once('end', resolve));
    const exited = new Promise<number | undefined>((resolve) => session.once('exit', (exit: { code: number | undefined }) => resolve(exit.code)));
    const up = new PatternSource('rekey-up', SIZE);
    pump(up, session, () => session.end());
    await ended;
    assert.equal(await exited, 0);
    assert.equal(down.bytes, SIZE);
    assert.equal(down.digest(), download!.digest(), 'server → client');
    assert.equal(Buffer.concat(stderr).toString(), `${SIZE} ${up.digest()}\n`, 'client → server');
    t.diagnostic(`${rekeys} key re-exchanges seen by the client during the transfer`);
    assert.ok(rekeys >= 10, `only ${rekeys} re-exchanges`);
  });
});

describe('many channels on one connection', { timeout: 120_000 }, () => {
  test('100 concurrent session channels on one connection each echo 1 MiB back byte-exact', async (t) => {
    const CHANNELS = 100;
    const waiting: (() => void)[] = [];
    let openAtOnce = 0;
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command !== 'cat') return;
        // Nothing is echoed until all 100 are open: they are truly concurrent.
        waiting.push(() => {
          session.pipe(session, { end: false });
          session.on('end', () => session.exit(0));
        });
        if (waiting.length === CHANNELS) {
          openAtOnce = lab.serverChannelCount();
          for (const start of waiting.splice(0)) start();
        }
      },
    });
    const client = await lab.connect();
    const inputs = Array.from({ length: CHANNELS }, (_, i) => patternBytes(`channel-${i}`, MiB));
    const results = await Promise.all(inputs.map((stdin) => client.exec('cat', { stdin })));
    assert.equal(openAtOnce, CHANNELS);
    results.forEach((result, i) => {
      assert.equal(result.code, 0, `channel ${i} exit status`);
      assert.equal(result.stdout.length, MiB, `channel ${i} length`);
      assert.equal(sha256(result.stdout), sha256(inputs[i]!), `channel ${i} content`);
    });
    await waitUntil(() => lab.serverChannelCount() === 0, 'every channel to be closed on the server');
  });

  test('100 concurrent direct-tcpip channels to a TCP echo server each carry 256 KiB byte-exact', async (t) => {
    const lab = await startConnLab(t);
    const echo = await startEchoServer(t);
    const client = await lab.connect();
    const inputs = Array.from({ length: 100 }, (_, i) => patternBytes(`tcpip-${i}`, 256 * KiB));
    const streams = await Promise.all(inputs.map(() => client.forwardOut('127.0.0.1', echo.port)));
    assert.equal(lab.serverChannelCount(), 100);
    const outputs = await Promise.all(streams.map((stream, i) => roundTripOver(stream, inputs[i]!)));
    outputs.forEach((output, i) => assert.equal(sha256(output), sha256(inputs[i]!), `channel ${i}`));
    assert.equal(echo.accepted(), 100);
    await waitUntil(() => lab.serverChannelCount() === 0, 'every forwarded channel to be closed on the server');
  });
});

/** A Readable that never ends: a process writing as fast as it may. */
function endless(byte: number): Readable {
  const block = Buffer.alloc(64 * KiB, byte);
  return new Readable({
    read() {
      this.push(block);
    },
  });
}

/**
 * Writes twice the window (in 64 KiB blocks, ignoring back-pressure) to a channel whose reader
 * never reads; the last write's callback can only run when the channel ends.
 */
function stallUpload(upload: ClientSession, fill: number): { pendingWrite: Promise<void>; error: () => Error | null | undefined } {
  const block = Buffer.alloc(64 * KiB, fill);
  for (let sent = 0; sent < 2 * DEFAULT_WINDOW - block.length; sent += block.length) upload.write(block);
  let error: Error | null | undefined;
  const pendingWrite = new Promise<void>((resolve) =>
    upload.write(block, (e) => {
      error = e;
      resolve();
    }),
  );
  return { pendingWrite, error: () => error };
}

describe('the connection dies under open channels', { timeout: 60_000 }, () => {
  test('the client\'s TCP socket destroyed mid-transfer: client and server both get ConnectionLostError, channels close with it, nothing crashes, the server serves the next client', async (t) => {
    const serverChannelErrors: (SshError | undefined)[] = [];
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        session.once('channel-close', (error?: SshError) => serverChannelErrors.push(error));
        if (command === 'flood') {
          // stdout and stderr piped in, as tsshd pipes a command's output: the case that used to crash the server.
          const out = endless(1);
          const err = endless(2);
          out.pipe(session);
          err.pipe(session.stderr);
          session.once('channel-close', () => {
            out.destroy();
            err.destroy();
          });
        } else if (command === 'echo hi') {
          session.write('hi\n');
          session.exit(0);
        }
        // 'sink' and 'hang' never read and never exit.
      },
    });
    const { client, socket } = await lab.connectOverOwnSocket();
    const serverConnection = lab.connections[0]!;
    const serverClosed = new Promise<SshError | undefined>((resolve) => serverConnection.once('close', resolve));
    const clientClosed = new Promise<SshError | undefined>((resolve) => client.once('close', resolve));

    const flood = await client.execStream('flood');
    const floodClosed = new Promise<SshError | undefined>((resolve) => flood.once('channel-close', resolve));
    const upload = await client.execStream('sink');
    const hanging = client.exec('hang');
    hanging.catch(() => {});
    // Upload more than the window to a reader that never reads: the last write waits for window.
    const { pendingWrite, error: pendingWriteError } = stallUpload(upload, 3);
    await waitUntil(() => upload.channel.remoteWindow === 0, 'the upload to run out of window');
    let downloaded = 0;
    flood.on('data', (chunk: Buffer) => (downloaded += chunk.length));
    flood.stderr.resume();
    await waitUntil(() => downloaded >= 4 * MiB, 'the flood to be flowing');

    socket.destroy();

    const clientError = await clientClosed;
    assert.ok(clientError instanceof ConnectionLostError, `client close: ${String(clientError)}`);
    assert.equal(clientError.code, 'ERR_SSH_CONNECTION_LOST');
    assert.match(clientError.message, /^connection lost/);
    const floodError = await floodClosed;
    assert.ok(floodError instanceof ConnectionLostError);
    assert.equal(flood.closeError, floodError);
    await assert.rejects(hanging, (error: unknown) => error instanceof ConnectionLostError);
    await pendingWrite;
    assert.ok(pendingWriteError() instanceof ConnectionLostError, `the waiting write's callback got ${String(pendingWriteError())}`);
    assert.ok(flood.destroyed && upload.destroyed);

    const serverError = await serverClosed;
    assert.ok(serverError instanceof ConnectionLostError, `server close: ${String(serverError)}`);
    await waitUntil(() => serverChannelErrors.length === 3, 'the server sessions to close');
    for (const error of serverChannelErrors) assert.ok(error instanceof ConnectionLostError);

    // The dead client says so clearly instead of hanging.
    await assert.rejects(client.exec('echo hi'), (error: unknown) => error instanceof SshError && error.code === 'ERR_SSH_CONNECTION_LOST');
    await assert.rejects(client.forwardOut('127.0.0.1', 1), (error: unknown) => error instanceof SshError && error.code === 'ERR_SSH_CONNECTION_LOST');
    // The server lives on.
    const next = await lab.connect();
    assert.equal((await next.exec('echo hi')).stdout.toString(), 'hi\n');
    await next.end();
    await waitUntil(() => lab.server.connectionCount === 0, 'the server to forget both connections');
  });

  test('the server\'s TCP socket destroyed mid-transfer: the client gets ConnectionLostError on the connection, its channels and its waiting write; the server keeps serving', async (t) => {
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command === 'flood') endless(4).pipe(session);
        else if (command === 'echo hi') {
          session.write('hi\n');
          session.exit(0);
        }
      },
    });
    const own = await lab.acceptOnOwnListener();
    const client = await lab.connect({ port: own.port });
    const serverConnection = lab.connections[0]!;
    const serverClosed = new Promise<SshError | undefined>((resolve) => serverConnection.once('close', resolve));
    const clientClosed = new Promise<SshError | undefined>((resolve) => client.once('close', resolve));
    const flood = await client.execStream('flood');
    const upload = await client.execStream('sink');
    const uploadClosed = new Promise<SshError | undefined>((resolve) => upload.once('channel-close', resolve));
    const { pendingWrite, error: pendingWriteError } = stallUpload(upload, 5);
    await waitUntil(() => upload.channel.remoteWindow === 0, 'the upload to run out of window');
    let downloaded = 0;
    flood.on('data', (chunk: Buffer) => (downloaded += chunk.length));
    await waitUntil(() => downloaded >= 4 * MiB, 'the flood to be flowing');

    own.serverSocket()!.destroy();

    const clientError = await clientClosed;
    assert.ok(clientError instanceof ConnectionLostError, `client close: ${String(clientError)}`);
    assert.ok((await uploadClosed) instanceof ConnectionLostError);
    await pendingWrite;
    assert.ok(pendingWriteError() instanceof ConnectionLostError, `the waiting write's callback got ${String(pendingWriteError())}`);
    assert.ok((await serverClosed) instanceof ConnectionLostError);
    // Both listeners still serve.
    for (const port of [lab.port, own.port]) {
      const next = await lab.connect({ port });
      assert.equal((await next.exec('echo hi')).stdout.toString(), 'hi\n');
      await next.end();
    }
  });
});

describe('session output before exit', { timeout: 60_000 }, () => {
  test('3 MiB written to stdout and 3 MiB to stderr just before exit() all reach the client, then the exit status', async (t) => {
    const out = patternBytes('before-exit-stdout', 3 * MiB);
    const err = patternBytes('before-exit-stderr', 3 * MiB);
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command === 'stderr') session.stderr.write(err);
        else if (command === 'stdout') session.write(out);
        else {
          session.write(out);
          session.stderr.write(err);
        }
        session.exit(3);
      },
    });
    const client = await lab.connect();
    for (const command of ['stderr', 'stdout', 'both']) {
      const result = await client.exec(command);
      assert.equal(result.code, 3, command);
      assert.equal(sha256(result.stdout), sha256(command === 'stderr' ? Buffer.alloc(0) : out), `${command}: stdout`);
      assert.equal(sha256(result.stderr), sha256(command === 'stdout' ? Buffer.alloc(0) : err), `${command}: stderr (${result.stderr.length} bytes)`);
    }
  });
});

describe('the server ends the connection', { timeout: 60_000 }, () => {
  test('server.close() with channels open: the client gets DisconnectError with the reason, a running exec and the open channels end with it', async (t) => {
    const lab = await startConnLab(t, { exec: () => {} }); // commands never finish
    const client = await lab.connect();
    const clientClosed = new Promise<SshError | undefined>((resolve) => client.once('close', resolve));
    const open = await client.execStream('hang');
    const openClosed = new Promise<SshError | undefined>((resolve) => open.once('channel-close', resolve));
    const running = client.exec('hang too');
    running.catch(() => {});
    await waitUntil(() => lab.serverChannelCount() === 2, 'both sessions to be open on the server');
    await lab.server.close();
    const error = await clientClosed;
    assert.ok(error instanceof DisconnectError, String(error));
    assert.equal(error.peerReason, DisconnectReason.BY_APPLICATION);
    assert.equal(error.message, 'peer disconnected: BY_APPLICATION: disconnected by application');
    assert.equal(await openClosed, error);
    await assert.rejects(running, error);
  });
});

describe('refusals leave the connection usable', { timeout: 60_000 }, () => {
  test('forwardOut to a closed port rejects with ChannelOpenError "connect failed" and the reason; a transfer on another channel is unaffected', async (t) => {
    const lab = await startConnLab(t, {
      exec: (session, command) => {
        if (command === 'cat') {
          session.pipe(session, { end: false });
          session.on('end', () => session.exit(0));
        }
      },
    });
    const echo = await startEchoServer(t);
    const client = await lab.connect();
    const busyInput = patternBytes('busy', 8 * MiB);
    const busy = client.exec('cat', { stdin: busyInput });
    const port = await closedPort();
    await assert.rejects(client.forwardOut('127.0.0.1', port), (error: unknown) => {
      assert.ok(error instanceof ChannelOpenError, String(error));
      assert.equal(error.failureReason, ChannelOpenFailure.CONNECT_FAILED);
      assert.equal(error.channelType, 'direct-tcpip');
      assert.match(error.message, new RegExp(`^could not open direct-tcpip channel: connect failed: connect to 127\\.0\\.0\\.1 port ${port}: connect ECONNREFUSED`));
      return true;
    });
    const stream = await client.forwardOut('127.0.0.1', echo.port);
    const payload = patternBytes('after-refusal', MiB);
    assert.equal(sha256(await roundTripOver(stream, payload)), sha256(payload));
    const result = await busy;
    assert.equal(result.code, 0);
    assert.equal(sha256(result.stdout), sha256(busyInput));
    await waitUntil(() => lab.serverChannelCount() === 0, 'every channel to be closed on the server');
  });

  test('forwardOut to a server that serves no direct-tcpip rejects as administratively prohibited', async (t) => {
    const lab = await startConnLab(t, { directTcpip: false });
    const client = await lab.connect();
    await assert.rejects(client.forwardOut('127.0.0.1', 22), {
      name: 'ChannelOpenError',
      message: 'could not open direct-tcpip channel: administratively prohibited: port forwarding is disabled',
    });
  });

  test('an exec the server refuses rejects with "server refused exec", closes its channel on both sides, and the connection goes on', async (t) => {
    const lab = await startConnLab(t, {
      acceptExec: (command) => !command.startsWith('forbidden'),
      exec: (session, command) => {
        session.write(`ran ${command}\n`);
        session.exit(0);
      },
    });
    const client = await lab.connect();
    await assert.rejects(client.exec('forbidden command'), (error: unknown) => {
      assert.ok(error instanceof SshError);
      assert.equal(error.message, 'server refused exec "forbidden command"');
      return true;
    });
    await waitUntil(() => lab.serverChannelCount() === 0, 'the refused session to be closed on the server');
    await assert.rejects(client.execStream('forbidden stream'), { message: 'server refused exec "forbidden stream"' });
    await assert.rejects(client.subsystem('sftp'), { message: 'server refused subsystem "sftp"' });
    await assert.rejects(client.shell(), { message: 'server refused pty-req' });
    await waitUntil(() => lab.serverChannelCount() === 0, 'every refused session to be closed on the server');
    const result = await client.exec('allowed');
    assert.equal(result.stdout.toString(), 'ran allowed\n');
    assert.equal(result.code, 0);
  });

  test('global requests the server refuses: forwardIn rejects naming the port, an unknown request resolves false', async (t) => {
    const lab = await startConnLab(t, { exec: (session) => session.exit(0) });
    const client = await lab.connect();
    await assert.rejects(client.forwardIn('127.0.0.1', 0, () => {}), { message: 'remote port forwarding failed for listen port 0' });
    assert.equal(await client.globalRequest('unknown-request@example.com'), false);
    assert.equal((await client.exec('true')).code, 0);
  });
});
