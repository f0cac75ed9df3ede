/** A self-signed certificate for tests, made with openssl, and what a browser needs to trust it. */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TestCert {
  certFile: string
  keyFile: string
  /** base64 SHA-256 of the public key: Chromium's `--ignore-certificate-errors-spki-list`. */
  spki: string
}

export async function makeCert(dir: string, names: { ips?: string[]; dns?: string[] }): Promise<TestCert> {
  const certFile = join(dir, 'cert.pem'), keyFile = join(dir, 'key.pem')
  const san = [...(names.ips ?? []).map((a) => `IP:${a}`), ...(names.dns ?? []).map((d) => `DNS:${d}`)].join(',')
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=colony-test', '-addext', `subjectAltName=${san}`, '-keyout', keyFile, '-out', certFile])
  const { stdout: pub } = await run('openssl', ['x509', '-pubkey', '-noout', '-in', certFile])
  const der = await new Promise<Buffer>((resolve, reject) => {
    const p = execFile('openssl', ['pkey', '-pubin', '-outform', 'der'], { encoding: 'buffer' }, (err, out) => (err ? reject(err) : resolve(out as unknown as Buffer)))
    p.stdin!.end(pub)
  })
  return { certFile, keyFile, spki: createHash('sha256').update(der).digest('base64') }
}
