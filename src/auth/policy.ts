/**
 * Which methods a client must complete, as OpenSSH's `AuthenticationMethods`: alternatives
 * separated by spaces, each an ordered comma list (`publickey,password publickey,keyboard-interactive`).
 * A success removes that method from the front of every alternative that starts with it; the
 * user is authenticated when an alternative is empty. Until then the methods that can still
 * succeed are the first ones of the remaining alternatives (partial success).
 */
export class MethodPolicy {
  private remaining: string[][];

  /** `sequences`: each alternative as its list of methods; a single-method alternative per enabled method means "any". */
  constructor(sequences: readonly (readonly string[])[]) {
    if (sequences.length === 0 || sequences.some((s) => s.length === 0)) {
      throw new RangeError('AuthenticationMethods needs at least one non-empty list of methods');
    }
    this.remaining = sequences.map((s) => [...s]);
  }

  /** Parse OpenSSH's syntax, e.g. `publickey,password publickey,keyboard-interactive`. */
  static parse(text: string): MethodPolicy {
    return new MethodPolicy(
      text
        .trim()
        .split(/\s+/)
        .map((alternative) => alternative.split(',').map((m) => m.split(':')[0]!)),
    );
  }

  /** A fresh copy with no progress: each connection tracks its own. */
  clone(): MethodPolicy {
    return new MethodPolicy(this.remaining);
  }

  /** The methods that can succeed next, in the order first named. */
  get allowed(): string[] {
    return [...new Set(this.remaining.map((s) => s[0]!))];
  }

  /** Record a successful method: returns true when authentication is complete. */
  succeeded(method: string): boolean {
    let matched = false;
    for (const sequence of this.remaining) {
      if (sequence[0] === method) {
        sequence.shift();
        matched = true;
        if (sequence.length === 0) return true;
      }
    }
    if (!matched) throw new RangeError(`method ${method} is not allowed now`);
    // An alternative that cannot continue from here (it started with another method) stays:
    // the client may still take that route from the beginning, as in OpenSSH.
    return false;
  }
}
