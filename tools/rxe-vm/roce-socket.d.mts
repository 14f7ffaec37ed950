export declare const ROCE_SOCKET_LAUNCHER: string
export declare function roceSocketArgs(fam: 4 | 6, script: string, args?: readonly string[]): string[]
