/** What a coordinator lists of its connected peers (GET /api/peers), as the simulator checks it. */
import type { PeerInfo } from '@colony-grid/shared'

/** Every connected peer: a plain list, or pages (`Page<PeerInfo>`) followed to the end. */
export async function peerInfos(url: string, token: string): Promise<PeerInfo[]> {
  const out: PeerInfo[] = []
  for (let cursor: string | undefined, first = true; first || cursor; first = false) {
    const res = await fetch(`${url}/api/peers?limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { headers: { authorization: `Bearer ${token}` } })
    if (!res.ok) throw new Error(`GET /api/peers answered ${res.status}: ${await res.text()}`)
    const body = await res.json() as PeerInfo[] | { items: PeerInfo[]; next?: string }
    out.push(...(Array.isArray(body) ? body : body.items))
    cursor = Array.isArray(body) ? undefined : body.next
  }
  return out
}

/** The ids of the connected peers. */
export async function listedPeers(url: string, token: string): Promise<Set<string>> {
  return new Set((await peerInfos(url, token)).map((p) => p.id))
}
