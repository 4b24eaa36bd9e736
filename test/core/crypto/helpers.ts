/** Shared assertions for the crypto wrapper tests (not a test file itself). */
import { expect } from 'vitest';
import { CpnsError, type ErrorCode } from '../../../src/core/errors.js';

/** Runs `fn`, expects it to throw a CpnsError with `code`, and returns that error. */
export function expectCpnsError(fn: () => unknown, code: ErrorCode): CpnsError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected CpnsError ${code}, nothing was thrown`).toBeInstanceOf(CpnsError);
  const err = thrown as CpnsError;
  expect(err.code).toBe(code);
  return err;
}

/**
 * Counts, per category, the vector cases that reached the end of their assertions. The last test of each
 * file compares it with the expected numbers, so a category that is silently skipped (or a case that bails
 * out early) fails the run.
 */
export class Tally {
  private readonly counts = new Map<string, number>();

  hit(category: string): void {
    this.counts.set(category, (this.counts.get(category) ?? 0) + 1);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Count items by the category a function assigns, sorted by key for stable comparison. */
export function countBy<T>(items: readonly T[], category: (item: T) => string): Record<string, number> {
  const m = new Map<string, number>();
  for (const item of items) m.set(category(item), (m.get(category(item)) ?? 0) + 1);
  return Object.fromEntries([...m.entries()].sort(([a], [b]) => a.localeCompare(b)));
}
