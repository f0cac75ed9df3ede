/** What a deployment refuses, as the HTTP endpoint answers it. */
import { ColonyError } from '@colony-grid/shared'

/** Input the deployment does not take (400): the message names what it expected. */
export class BadInputError extends ColonyError { override readonly code = 'BAD_INPUT' }

/** No deployment of that name (404). */
export class NoDeploymentError extends ColonyError { override readonly code = 'NOT_FOUND' }

/** The queue is at its cap (429): try again after `retryAfterS`. */
export class QueueFullError extends ColonyError {
  override readonly code = 'QUEUE_FULL'
  constructor(message: string, readonly retryAfterS: number) { super(message) }
}
