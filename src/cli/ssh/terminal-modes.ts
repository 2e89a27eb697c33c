/**
 * The local terminal's modes for the pty request (RFC 4254 §8), as ssh sends them from
 * tcgetattr(3). Node cannot read termios itself; `stty -g` on the terminal prints it as
 * hexadecimal fields (iflag:oflag:cflag:lflag:cc0:cc1:…, GNU coreutils on Linux), which this
 * decodes with Linux's flag values.
 */
import { execFileSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

const IFLAG: Readonly<Record<string, number>> = {
  IGNPAR: 0o4, PARMRK: 0o10, INPCK: 0o20, ISTRIP: 0o40, INLCR: 0o100, IGNCR: 0o200, ICRNL: 0o400,
  IUCLC: 0o1000, IXON: 0o2000, IXANY: 0o4000, IXOFF: 0o10000, IMAXBEL: 0o20000, IUTF8: 0o40000,
};
const OFLAG: Readonly<Record<string, number>> = { OPOST: 0o1, OLCUC: 0o2, ONLCR: 0o4, OCRNL: 0o10, ONOCR: 0o20, ONLRET: 0o40 };
const LFLAG: Readonly<Record<string, number>> = {
  ISIG: 0o1, ICANON: 0o2, XCASE: 0o4, ECHO: 0o10, ECHOE: 0o20, ECHOK: 0o40, ECHONL: 0o100, NOFLSH: 0o200,
  TOSTOP: 0o400, ECHOCTL: 0o1000, ECHOKE: 0o4000, PENDIN: 0o40000, IEXTEN: 0o100000,
};
/** Linux's c_cc indices. */
const CC: Readonly<Record<string, number>> = {
  VINTR: 0, VQUIT: 1, VERASE: 2, VKILL: 3, VEOF: 4, VSTART: 8, VSTOP: 9, VSUSP: 10, VEOL: 11,
  VREPRINT: 12, VDISCARD: 13, VWERASE: 14, VLNEXT: 15, VEOL2: 16,
};

/** Decode `stty -g` output into RFC 4254 §8 mode names and values. */
export function modesFromSttyG(text: string): Record<string, number> {
  const fields = text.trim().split(':').map((f) => parseInt(f, 16));
  if (fields.length < 5 || fields.some((f) => Number.isNaN(f))) return {};
  const [iflag, oflag, cflag, lflag] = fields as [number, number, number, number];
  const cc = fields.slice(4);
  const modes: Record<string, number> = {};
  for (const [name, bit] of Object.entries(IFLAG)) modes[name] = iflag & bit ? 1 : 0;
  for (const [name, bit] of Object.entries(OFLAG)) modes[name] = oflag & bit ? 1 : 0;
  for (const [name, bit] of Object.entries(LFLAG)) modes[name] = lflag & bit ? 1 : 0;
  const csize = cflag & 0o60;
  modes.CS7 = csize === 0o40 ? 1 : 0;
  modes.CS8 = csize === 0o60 ? 1 : 0;
  modes.PARENB = cflag & 0o400 ? 1 : 0;
  modes.PARODD = cflag & 0o1000 ? 1 : 0;
  for (const [name, index] of Object.entries(CC)) {
    const value = cc[index];
    // 0 means "disabled" on Linux; the protocol says 255 (RFC 4254 §8).
    if (value !== undefined) modes[name] = value === 0 ? 255 : value;
  }
  return modes;
}

/** The modes of our controlling terminal, or {} when there is none or stty cannot tell. */
export function localTerminalModes(): Record<string, number> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r');
  } catch {
    return {};
  }
  try {
    return modesFromSttyG(execFileSync('stty', ['-g'], { stdio: [fd, 'pipe', 'ignore'], encoding: 'utf8' }));
  } catch {
    return {};
  } finally {
    closeSync(fd);
  }
}
