import { CodedError } from '../core/errors.js';

/** A usage error: the CLI prints its message and exits with code 2. */
export class UsageError extends CodedError<'USAGE'> {
  readonly family = 'cli';

  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, undefined, options);
    this.name = 'UsageError';
  }
}

/**
 * A daemon's fatal condition (its identity revoked, its data directory in use...): the CLI prints
 * `cpns: <code>: <message>` and exits with code 1.
 */
export class DaemonError<C extends string = string> extends CodedError<C> {
  readonly family = 'cli';

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(code, message, undefined, options);
    this.name = 'DaemonError';
  }
}
