/** Skip reason for a suite whose environment lacks something (false when it can run); throws under CI=1. */
export function environmentSkip(suite: string, reason: string | null | undefined | false): string | false
/** True when running under CI. */
export function inCi(): boolean
