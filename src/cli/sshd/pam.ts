/**
 * Password checks for system users through PAM (UsePAM yes), with the optional `authenticate-pam`
 * binding under the service name `sshd`, as sshd uses. It drives one password prompt, not a full
 * PAM conversation. Without the binding (not installed, or no libpam headers when it was built)
 * PAM is unavailable and tsshd says so once at start.
 */
import { createRequire } from 'node:module';

interface PamBinding {
  authenticate(
    user: string,
    password: string,
    callback: (error: unknown) => void,
    options?: { serviceName?: string; remoteHost?: string },
  ): void;
}

export type PamCheck = (user: string, password: string, remoteHost: string) => Promise<boolean>;

/** Load PAM; undefined (with the reason) when it cannot be used here. */
export function loadPam(): { check: PamCheck } | { unavailable: string } {
  if (process.env.TSSH_DISABLE_PAM === '1') return { unavailable: 'disabled by TSSH_DISABLE_PAM' };
  let binding: PamBinding;
  try {
    // A native CommonJS addon: loaded through require, only when tsshd asks for PAM.
    binding = createRequire(import.meta.url)('authenticate-pam') as PamBinding;
  } catch (error) {
    return { unavailable: `the optional authenticate-pam binding is not installed (${(error as Error).message.split('\n')[0]})` };
  }
  return {
    check: (user, password, remoteHost) =>
      new Promise((resolve) => {
        binding.authenticate(user, password, (error) => resolve(!error), { serviceName: 'sshd', remoteHost });
      }),
  };
}
