import type { Limits } from './protocol.js'

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 32 * 1024 * 1024,
  inlineMaxBytes: 64 * 1024,
  relayChunkBytes: 256 * 1024,
}

/** An actor's checkpoint, kept by the coordinator with the actor's record. */
export const MAX_CHECKPOINT_BYTES = 1024 * 1024
