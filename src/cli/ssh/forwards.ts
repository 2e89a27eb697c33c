/**
 * tssh's port forwardings on a live connection: LocalForward (-L), DynamicForward (-D) and
 * RemoteForward (-R), set up at start from the configuration and later from the `~C` command
 * line, which can also cancel them (-KL, -KD, -KR); and the connections open through them, for
 * the `~#` escape.
 */
import { connect as netConnect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { joinStreams } from '../../forwarding/join.js';
import type { SshClient } from '../../client.js';
import type { Forward, ForwardEndpoint } from '../../config/ssh-config.js';
import { parseForwardSpec } from '../../config/ssh-config.js';
import type { ClientLog } from './connect.js';

/** A forwarding that went wrong, with the message ssh would print. */
export class ForwardError extends Error {}

interface Listener {
  readonly kind: 'local' | 'dynamic';
  readonly key: string;
  readonly server: NetServer;
}

interface RemoteListener {
  readonly key: string;
  readonly cancel: () => Promise<boolean>;
}

interface OpenConnection {
  readonly id: number;
  readonly description: string;
}

const describe = (endpoint: ForwardEndpoint): string => ('path' in endpoint ? endpoint.path : `${endpoint.host ?? 'localhost'}:${endpoint.port}`);

export class ForwardManager {
  private readonly listeners = new Map<string, Listener>();
  private readonly remotes = new Map<string, RemoteListener>();
  private readonly open = new Map<number, OpenConnection>();
  private nextId = 1;

  constructor(
    private readonly client: SshClient,
    private readonly gatewayPorts: boolean,
    private readonly log: ClientLog,
  ) {
    client.once('close', () => {
      for (const listener of this.listeners.values()) listener.server.close();
      this.listeners.clear();
    });
  }

  /** Where a local (or dynamic) forwarding listens: its bind address, or loopback unless GatewayPorts. */
  private bindOf(listen: ForwardEndpoint): { host: string; port: number } | { path: string } {
    if ('path' in listen) return { path: listen.path };
    const host = listen.host === null || listen.host === undefined ? (this.gatewayPorts ? '0.0.0.0' : '127.0.0.1') : listen.host === '*' ? '0.0.0.0' : listen.host === 'localhost' ? '127.0.0.1' : listen.host;
    return { host, port: listen.port };
  }

  private keyOf(listen: ForwardEndpoint): string {
    const bind = this.bindOf(listen);
    return 'path' in bind ? bind.path : `${bind.host}:${bind.port}`;
  }

  /** Counts a connection for `~#` until `socket` closes. */
  private track(socket: Socket, description: string): void {
    const id = this.nextId++;
    this.open.set(id, { id, description });
    socket.once('close', () => this.open.delete(id));
  }

  private listen(server: NetServer, listen: ForwardEndpoint): Promise<void> {
    const bind = this.bindOf(listen);
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in bind) server.listen(bind.path, () => resolve());
      else server.listen(bind.port, bind.host, () => resolve());
    });
  }

  /** -L: listen here, forward each connection to the target through the server. */
  async addLocal(forward: Forward): Promise<void> {
    const target = forward.connect;
    if (!target) throw new ForwardError('Bad local forwarding specification.');
    const key = this.keyOf(forward.listen);
    if (this.listeners.has(key)) throw new ForwardError(`bind ${key}: Address already in use`);
    const open = (): Promise<Duplex> =>
      'path' in target ? this.client.forwardOutStreamLocal(target.path) : this.client.forwardOut(target.host ?? 'localhost', target.port);
    const server = createNetServer({ allowHalfOpen: true }, (socket) => {
      // As ssh does for a forwarded TCP port: what the application writes goes at once.
      if (!('path' in forward.listen)) socket.setNoDelay(true);
      this.track(socket, `direct-tcpip: listening on ${key} for ${describe(target)}, from ${socket.remoteAddress ?? 'a socket'}${socket.remotePort ? `:${socket.remotePort}` : ''}`);
      open().then((stream) => joinStreams(socket, stream), () => socket.destroy());
    });
    try {
      await this.listen(server, forward.listen);
    } catch (error) {
      throw new ForwardError(`bind ${key}: ${(error as Error).message}`);
    }
    this.listeners.set(key, { kind: 'local', key, server });
    this.log(1, `Local connections to ${key} forwarded to remote ${'path' in target ? target.path : `address ${target.host}:${target.port}`}`);
  }

  /** -D: a SOCKS 4/5 proxy here; each connection goes where the client asks, through the server. */
  async addDynamic(forward: Forward): Promise<void> {
    const bind = this.bindOf(forward.listen);
    if ('path' in bind) throw new ForwardError('Bad dynamic forwarding specification.');
    const key = `${bind.host}:${bind.port}`;
    if (this.listeners.has(key)) throw new ForwardError(`bind ${key}: Address already in use`);
    let server: NetServer;
    try {
      server = await this.client.openSocksProxy(bind.port, bind.host);
    } catch (error) {
      throw new ForwardError(`bind [${bind.host}]:${bind.port}: ${(error as Error).message}`);
    }
    server.on('connection', (socket: Socket) => this.track(socket, `dynamic-tcpip: SOCKS on ${key}, from ${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`));
    this.listeners.set(key, { kind: 'dynamic', key, server });
    this.log(1, `Local forwarding listening on ${bind.host} port ${bind.port}.`);
  }

  /** -R: the server listens and sends each connection back to us, for the target here. Resolves with the port. */
  async addRemote(forward: Forward): Promise<number> {
    const target = forward.connect;
    if (!target) throw new ForwardError('Bad remote forwarding specification.');
    const connectLocal = (stream: Duplex): void => {
      const socket = 'path' in target ? netConnect({ path: target.path, allowHalfOpen: true }) : netConnect({ host: target.host ?? 'localhost', port: target.port, allowHalfOpen: true });
      this.track(socket, `forwarded-tcpip: from the server's ${'path' in forward.listen ? forward.listen.path : `port ${forward.listen.port}`} to ${describe(target)}`);
      joinStreams(socket, stream);
    };
    if ('path' in forward.listen) {
      const path = forward.listen.path;
      try {
        const { cancel } = await this.client.forwardInStreamLocal(path, connectLocal);
        this.remotes.set(path, { key: path, cancel });
      } catch {
        throw new ForwardError(`Warning: remote port forwarding failed for listen path ${path}`);
      }
      return 0;
    }
    const requested = forward.listen.port;
    const host = forward.listen.host ?? '';
    let result: { port: number; cancel(): Promise<boolean> };
    try {
      result = await this.client.forwardIn(host, requested, connectLocal);
    } catch {
      throw new ForwardError(`Warning: remote port forwarding failed for listen port ${requested}`);
    }
    this.remotes.set(`${host}:${result.port}`, { key: `${host}:${result.port}`, cancel: () => result.cancel() });
    return result.port;
  }

  /** -KL / -KD: stop listening (connections already open stay open, as in ssh). */
  cancelListener(kind: 'local' | 'dynamic', listen: ForwardEndpoint): boolean {
    const key = this.keyOf(listen);
    const listener = this.listeners.get(key);
    if (!listener || listener.kind !== kind) return false;
    this.listeners.delete(key);
    listener.server.close();
    return true;
  }

  /** -KR: ask the server to stop listening. */
  async cancelRemote(listen: ForwardEndpoint): Promise<boolean> {
    const key = 'path' in listen ? listen.path : `${listen.host ?? ''}:${listen.port}`;
    const remote = this.remotes.get(key) ?? ('path' in listen ? undefined : [...this.remotes.values()].find((r) => r.key.endsWith(`:${listen.port}`) && listen.host === null));
    if (!remote) return false;
    this.remotes.delete(remote.key);
    return remote.cancel().catch(() => false);
  }

  /** `~#`: the connections open through the forwardings, as ssh lists its channels. */
  connectionList(): string {
    const lines = ['The following connections are open:'];
    for (const c of this.open.values()) lines.push(`  #${c.id} ${c.description}`);
    return `${lines.join('\r\n')}\r\n`;
  }

  /**
   * One `ssh>` command line (`~C`), as ssh's: -L, -R, -D add a forwarding, -KL, -KR, -KD cancel
   * one, `?`/`-h`/`help` lists the commands. Resolves with the text to show (CR LF lines).
   */
  async commandLine(line: string): Promise<string> {
    const out = (...lines: string[]): string => (lines.length > 0 ? `${lines.join('\r\n')}\r\n` : '');
    let s = line.trim();
    if (s.startsWith('-')) s = s.slice(1);
    if (s === '') return '';
    if (s === 'help' || s.startsWith('h') || s.startsWith('H') || s.startsWith('?')) return out(...COMMAND_HELP);
    let cancel = false;
    if (s.startsWith('K')) {
      cancel = true;
      s = s.slice(1);
    }
    const kind = s[0] === 'L' ? 'local' : s[0] === 'R' ? 'remote' : s[0] === 'D' ? 'dynamic' : undefined;
    if (kind === undefined) return out('Invalid command.');
    const spec = s.slice(1).trim();
    try {
      if (cancel) {
        // [bind_address:]port (or a socket path) names the forwarding to cancel.
        const forward = parseForwardSpec(spec, 'dynamic');
        if (!forward && !(kind === 'remote' && parseForwardSpec(spec, 'remote-dynamic'))) return out('Bad forwarding close specification.');
        const listen = (forward ?? parseForwardSpec(spec, 'remote-dynamic'))!.listen;
        const ok = kind === 'remote' ? await this.cancelRemote(listen) : this.cancelListener(kind, listen);
        return out(ok ? 'Canceled forwarding.' : 'Unknown port forwarding.');
      }
      if (kind === 'remote') {
        const forward = parseForwardSpec(spec, 'remote');
        if (!forward) return out('Bad remote forwarding specification.');
        const port = await this.addRemote(forward);
        const allocated = !('path' in forward.listen) && forward.listen.port === 0 ? [`Allocated port ${port} for remote forward to ${describe(forward.connect!)}`] : [];
        return out(...allocated, 'Forwarding port.');
      }
      const forward = parseForwardSpec(spec, kind);
      if (!forward) return out('Bad local forwarding specification.');
      if (kind === 'local') await this.addLocal(forward);
      else await this.addDynamic(forward);
      return out('Forwarding port.');
    } catch (error) {
      if (error instanceof ForwardError) return out(error.message, 'Port forwarding failed.');
      throw error;
    }
  }
}

const COMMAND_HELP = [
  'Commands:',
  '      -L[bind_address:]port:host:hostport    add a local forwarding',
  '      -R[bind_address:]port:host:hostport    add a remote forwarding',
  '      -D[bind_address:]port                  add a dynamic (SOCKS) forwarding',
  '      -KL[bind_address:]port                 cancel a local forwarding',
  '      -KR[bind_address:]port                 cancel a remote forwarding',
  '      -KD[bind_address:]port                 cancel a dynamic forwarding',
];
