/** A usage error: the CLI prints its message and exits with code 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

/**
 * A daemon's fatal condition (its identity revoked, its data directory in use...): the CLI prints
 * `cpns: <code>: <message>` and exits with code 1.
 */
export class DaemonError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
