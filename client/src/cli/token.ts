/** `colony token create | list | revoke`: tokens per user or machine, with the operator's submit token. */
import type { Command } from 'commander'
import { Option } from 'commander'
import { api, fail, target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { helpAfter, oneShot, subcommand, withTarget } from './program.js'

interface TokenOptions { url?: string; token?: string; json?: boolean }
interface TokenInfo { id: string; role: string; label: string; revoked: boolean; operator: boolean; trusted?: boolean }

export function registerToken(program: Command): void {
  const token = subcommand(program, 'token', 'make, list and revoke tokens (with the operator\'s submit token)')
  helpAfter(token, ['colony token create --role join --label lab-3', 'colony token list', 'colony token revoke t_1a2b3c'])
  const create = subcommand(token, 'create', 'make a token: a submit token for a user, or a join token for machines')
    .addOption(new Option('--role <role>', 'submit (drivers: submit jobs) or join (workers)').choices(['submit', 'join']).makeOptionMandatory())
    .option('--trusted', 'a trusted join token: its workers may run jobs\' mains (for the operator\'s own machines)')
    .option('--label <label>', 'what it is for (who, which machines)', '')
    .option('--json', 'print { token, id, ... } as JSON')
  helpAfter(withTarget(create), ['colony token create --role submit --label alice', 'colony token create --role join --trusted --label my-servers'])
    .action(oneShot(async (opts: TokenOptions & { role: 'submit' | 'join'; trusted?: boolean; label: string }) => {
      if (opts.trusted && opts.role !== 'join') fail('--trusted is for join tokens: the workers of a trusted join token may run jobs\' mains')
      const made = await api(target(opts), '/api/tokens', { method: 'POST', body: JSON.stringify({ role: opts.role, label: opts.label, ...(opts.trusted ? { trusted: true } : {}) }) }) as { token: string; id: string }
      console.log(opts.json ? JSON.stringify(made, null, 2) : `${made.token}\n(id ${made.id}; revoke it with: colony token revoke ${made.id})`)
      return EXIT.ok
    }))
  const list = subcommand(token, 'list', 'list the tokens (ids, roles and labels, never the secrets)')
    .option('--json', 'print them as JSON')
  helpAfter(withTarget(list), ['colony token list'])
    .action(oneShot(async (opts: TokenOptions) => {
      const tokens = await api(target(opts), '/api/tokens') as TokenInfo[]
      if (opts.json) console.log(JSON.stringify(tokens, null, 2))
      else for (const t of tokens) console.log(`  ${t.id}  ${t.role.padEnd(6)} ${t.operator ? 'operator ' : ''}${t.trusted ? 'trusted ' : ''}${t.revoked ? 'REVOKED ' : ''}${t.label}`)
      return EXIT.ok
    }))
  const revoke = subcommand(token, 'revoke', 'revoke a token: its connected peers are dropped at once')
    .argument('<id>', 'the token\'s id (colony token list)')
    .option('--json', 'print the answer as JSON')
  helpAfter(withTarget(revoke), ['colony token revoke t_1a2b3c'])
    .action(oneShot(async (id: string, opts: TokenOptions) => {
      const r = await api(target(opts), `/api/tokens/${encodeURIComponent(id)}`, { method: 'DELETE' }) as { peersDropped: number }
      console.log(opts.json ? JSON.stringify(r, null, 2) : `revoked ${id}; ${r.peersDropped} connected peer(s) dropped`)
      return EXIT.ok
    }))
}
