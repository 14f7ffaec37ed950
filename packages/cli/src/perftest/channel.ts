/**
 * One perftest TCP connection and its exchanges (ctx_xchg_data, ctx_hand_shake,
 * ctx_close_connection): the client writes first and then reads, the server reads and then
 * writes, so both sides must make the same exchanges in the same order. Every read but the ones
 * that wait for the peer's test to end has a deadline.
 */
import type net from 'node:net'
import { finish, readBytes, unmapAddress, writeAll } from '../oob/tcp.js'
import type { PerftestExchange } from './exchange.js'
import { DONE, KEY_MSG_SIZE_GID, decodeKeys, encodeKeys, type PerftestDest } from './wire.js'

export class PerftestChannel implements PerftestExchange {
  readonly socket: net.Socket
  readonly client: boolean
  readonly timeoutMs: number

  constructor(socket: net.Socket, client: boolean, timeoutMs: number) {
    this.socket = socket
    this.client = client
    this.timeoutMs = timeoutMs
  }

  /** This end's address of the TCP connection (IPv4 plain, not ::ffff:-mapped). */
  get localAddress(): string {
    return unmapAddress(this.socket.localAddress)
  }

  /** Sends `mine`, receives the peer's `n` bytes (`untimed`: no deadline, the peer is running a test). */
  async xchg(mine: Buffer, n: number, what: string, untimed = false): Promise<Buffer> {
    const read = (): Promise<Buffer> => readBytes(this.socket, n, what, false, untimed ? undefined : this.timeoutMs)
    if (this.client) {
      await writeAll(this.socket, mine)
      return read()
    }
    const theirs = await read()
    await writeAll(this.socket, mine)
    return theirs
  }

  /** ctx_hand_shake: our QP keys for the peer's. */
  async handshake(mine: PerftestDest, untimed = false, beforeReply?: () => void): Promise<PerftestDest> {
    if (beforeReply !== undefined && !this.client) {
      const theirs = await readBytes(this.socket, KEY_MSG_SIZE_GID, 'remote address', false, untimed ? undefined : this.timeoutMs)
      beforeReply()
      await writeAll(this.socket, encodeKeys(mine))
      return decodeKeys(theirs)
    }
    return decodeKeys(await this.xchg(encodeKeys(mine), KEY_MSG_SIZE_GID, 'remote address', untimed))
  }

  /** ctx_close_connection: a last handshake, then "done" and close (nobody reads the "done"). */
  async closeConnection(mine: PerftestDest, untimed = false): Promise<void> {
    await this.handshake(mine, untimed)
    await writeAll(this.socket, DONE).catch(() => {})
    finish(this.socket)
  }

  /** Ends the connection without a closing handshake (ib_write_lat has none). */
  finish(): void {
    finish(this.socket)
  }

  get finished(): boolean {
    return this.socket.writableEnded
  }

  destroy(): void {
    this.socket.destroy()
  }

  onGone(gone: () => void): () => void {
    this.socket.once('close', gone)
    return () => this.socket.off('close', gone)
  }
}
