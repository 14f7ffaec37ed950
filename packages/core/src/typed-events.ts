/**
 * EventEmitter with typed events: `TypedEventEmitter<{ closed: [reason: string] }>` checks event
 * names and gives listeners their argument types (no `any`). At run time it is EventEmitter itself.
 */
import { EventEmitter } from 'node:events'

/** Event name -> the listener's arguments. */
export type EventMap<E> = { [K in keyof E]: unknown[] }
type Listener<A extends unknown[]> = (...args: A) => void
type Name<E> = keyof E & string

export interface TypedEventEmitter<E extends EventMap<E>>
  extends Omit<EventEmitter, 'on' | 'once' | 'off' | 'addListener' | 'removeListener' | 'prependListener' | 'prependOnceListener' | 'emit' | 'listenerCount' | 'listeners' | 'rawListeners' | 'removeAllListeners'> {
  on<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  once<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  off<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  addListener<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  removeListener<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  prependListener<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  prependOnceListener<K extends Name<E>>(event: K, listener: Listener<E[K]>): this
  emit<K extends Name<E>>(event: K, ...args: E[K]): boolean
  listenerCount<K extends Name<E>>(event: K): number
  listeners<K extends Name<E>>(event: K): Array<Listener<E[K]>>
  rawListeners<K extends Name<E>>(event: K): Array<Listener<E[K]>>
  removeAllListeners(event?: Name<E>): this
}

export const TypedEventEmitter = EventEmitter as unknown as new <E extends EventMap<E>>() => TypedEventEmitter<E>
