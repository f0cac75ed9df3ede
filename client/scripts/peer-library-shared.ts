// What the peer library takes from @colony-grid/shared: its errors and ObjectRef, not the whole package
// (its zod schemas alone would triple the runner's source).
export { CancelledError, PeerDiedError, TimeoutError } from '../../shared/src/errors.js'
export { ObjectRef } from '../../shared/src/refs.js'
