// A test may skip only with a visible reason, and under CI=true a missing
// prerequisite is a failure: CI is supposed to have installed everything.

import type { TestContext } from 'node:test';

// Returns true when the caller should return early (skipped).
export function skipUnless(t: TestContext, missing: string | null): boolean {
  if (missing === null) return false;
  if (process.env.CI === 'true') throw new Error(`prerequisite missing under CI=true: ${missing}`);
  t.skip(missing);
  return true;
}

export function rootMissing(): string | null {
  return process.getuid?.() === 0 ? null : 'needs root';
}
