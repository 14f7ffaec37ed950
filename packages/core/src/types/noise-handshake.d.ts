// Types for the parts of noise-handshake (holepunchto, CommonJS, untyped) and sodium-universal the control plane uses.
declare module 'noise-handshake' {
  export interface NoiseKeyPair {
    publicKey: Uint8Array
    secretKey: Uint8Array
  }
  export interface NoiseOptions {
    /** The 32-byte pre-shared key of a `psk` pattern. */
    psk?: Uint8Array
  }
  /** A Noise handshake state (Noise_<pattern>_25519_ChaChaPoly_BLAKE2b). */
  export default class NoiseState {
    constructor(pattern: 'NN' | 'NNpsk0' | 'XX' | 'XXpsk0' | 'IK' | 'XK', initiator: boolean, staticKeypair?: NoiseKeyPair | null, opts?: NoiseOptions)
    readonly protocol: Uint8Array
    /** The ephemeral key pair; set before the first send to fix it (test vectors). */
    e: NoiseKeyPair | null
    /** The peer's static public key, once a message carried it. */
    readonly rs: Uint8Array | null
    readonly complete: boolean
    /** After the last message: the transport keys of this side and the handshake hash. */
    readonly tx: Uint8Array | null
    readonly rx: Uint8Array | null
    readonly hash: Uint8Array | null
    initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void
    send(payload?: Uint8Array): Uint8Array
    recv(message: Uint8Array): Uint8Array
  }
}

declare module 'noise-handshake/cipher.js' {
  /** Noise's CipherState over ChaCha20-Poly1305 (IETF): a key and a counter nonce. */
  export default class CipherState {
    constructor(key?: Uint8Array)
    nonce: number
    setNonce(nonce: number): void
    /** Throws when the ciphertext does not authenticate (the nonce is then unchanged). */
    encrypt(plaintext: Uint8Array, ad?: Uint8Array): Uint8Array
    decrypt(ciphertext: Uint8Array, ad?: Uint8Array): Uint8Array
  }
}

declare module 'sodium-universal' {
  export function crypto_sign_ed25519_pk_to_curve25519(x25519Pk: Uint8Array, ed25519Pk: Uint8Array): void
  export function crypto_sign_ed25519_sk_to_curve25519(x25519Sk: Uint8Array, ed25519Sk: Uint8Array): void
  export function crypto_scalarmult_base(pk: Uint8Array, sk: Uint8Array): void
}
