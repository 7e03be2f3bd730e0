// build.mjs replaces this identifier with package.json's version; run from
// source (the unit tests) there is no build, hence the fallback.
declare const __USERNS_GUARD_VERSION__: string | undefined;

export const VERSION: string = typeof __USERNS_GUARD_VERSION__ === 'string' ? __USERNS_GUARD_VERSION__ : '0.0.0-dev';
