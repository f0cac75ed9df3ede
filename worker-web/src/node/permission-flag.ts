/**
 * The flag that turns on Node's permission model for executors. Node 20 knows only
 * `--experimental-permission`; Node 22.13 and 23.5 added `--permission`, and Node 24 refuses
 * the old name ("bad option"), so an executor started with it would never run a task.
 */
export function permissionFlag(node: { version: string; flags?: ReadonlySet<string> } = { version: process.versions.node, flags: process.allowedNodeEnvironmentFlags }): '--permission' | '--experimental-permission' {
  // What this very binary accepts decides; the version is the fallback where a runtime does not say.
  if (node.flags?.has('--permission')) return '--permission'
  if (node.flags?.has('--experimental-permission')) return '--experimental-permission'
  const [major, minor] = node.version.split('.').map(Number)
  return major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 13) ? '--permission' : '--experimental-permission'
}
