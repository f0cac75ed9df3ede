import type { Limits } from './protocol.js'

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 32 * 1024 * 1024,
  inlineMaxBytes: 64 * 1024,
  relayChunkBytes: 256 * 1024,
}

/** An actor's checkpoint, kept by the coordinator with the actor's record. */
export const MAX_CHECKPOINT_BYTES = 1024 * 1024

/**
 * What job code controls and a peer sends on its behalf is cut to these sizes first, well under the
 * schema's bounds (schema.ts), so a hostile or careless job can fail only its own task, never break
 * the worker's connection. The coordinator cuts to the same sizes when it stores logs.
 */
export const JOB_TEXT_LIMITS = {
  /** Characters of one log line. */
  logLineChars: 10_000,
  /** Characters of an error message. */
  errorMessageChars: 20_000,
  /** Characters of a stack trace. */
  stackChars: 50_000,
  /** Characters of a task, function or export name. */
  nameChars: 500,
} as const

/** Cuts `s` to at most `max` characters, saying how many were left out. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s
  const note = (keep: number) => `… (${s.length - keep} more characters cut)`
  const keep = max - note(max - 40).length
  return keep <= 0 ? s.slice(0, max) : s.slice(0, keep) + note(keep)
}
