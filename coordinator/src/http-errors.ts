/** Errors the HTTP API answers with a status of their own (server.ts `onError` maps them). */
import { AuthError, ColonyError, LimitError } from '@colony-grid/shared'

export class HttpNotFound extends ColonyError {
  override readonly code = 'NOT_FOUND'
}

/** What retention dropped (control/retention.ts): the caller is told it existed, and for how long such things are kept. */
export class JobExpired extends ColonyError {
  override readonly code = 'EXPIRED'
}

/** The HTTP status of a ColonyError: 401 for a bad token, 413 past a limit, 404, 410, else 400. */
export function httpStatusOf(err: ColonyError): 400 | 401 | 404 | 410 | 413 {
  return err instanceof AuthError ? 401 : err instanceof LimitError ? 413 : err instanceof HttpNotFound ? 404 : err instanceof JobExpired ? 410 : 400
}
