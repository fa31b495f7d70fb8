import pkg from '../package.json';

/** drover's version (package.json). */
export const VERSION: string = pkg.version;
