/**
 * Files of the built package that a program runs or loads by path: the SFTP child
 * (dist/src/sftp/child.js) and the C command helper (dist/libexec/tsshd-spawner).
 *
 * Paths are taken from this module's own place, which is one folder below dist/ both where tsc
 * writes it (dist/src/package-files.js) and where it ends up bundled into a program
 * (dist/bin/NAME-main.cjs, scripts/bundle.mjs); a path relative to the module that names the
 * file would be right only unbundled.
 */
import { fileURLToPath } from 'node:url';

/** The absolute path of `path`, given relative to dist/ (e.g. `src/sftp/child.js`). */
export function packageFile(path: string): string {
  return fileURLToPath(new URL(`../${path}`, import.meta.url));
}
