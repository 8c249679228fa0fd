/**
 * Node only: a client over plain TCP to the gateway's client address
 * (`-ClientAddr`), beside everything `uniway-client` has.
 *
 * ```ts
 * import { connectTcp } from "uniway-client/node";
 * const client = await connectTcp("127.0.0.1", 4000);
 * ```
 *
 * @module
 */

import * as net from "node:net";

import { Client } from "./client.js";
import type { ClientOptions } from "./client.js";
import { LinkError } from "./errors.js";
import type { Connector } from "./link.js";

export * from "./index.js";

/** A connector for the gateway's TCP client address. Nagle is off, as the
 * gateway's own sockets: each frame goes out at once. */
export function tcpConnector(host: string, port: number): Connector {
  return (handlers) =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      let open = false;
      let ended = false;
      let failure: Error | undefined;
      socket.once("connect", () => {
        open = true;
        resolve({
          send: (bytes) => {
            socket.write(bytes);
          },
          close: () => {
            socket.destroy();
          },
        });
      });
      socket.on("data", (chunk: Buffer) => {
        handlers.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      });
      socket.on("error", (e) => {
        failure = e;
      });
      socket.on("close", () => {
        if (ended) return;
        ended = true;
        const why = failure ? `: ${failure.message}` : "";
        if (!open) {
          reject(new LinkError(`cannot connect to ${host}:${port}${why}`, undefined, undefined, { cause: failure }));
        } else {
          handlers.end(new LinkError(`the TCP link to ${host}:${port} closed${why}`, undefined, undefined, { cause: failure }));
        }
      });
    });
}

/** Connects to the gateway's TCP client address. */
export function connectTcp(host: string, port: number, options: ClientOptions = {}): Promise<Client> {
  return Client.connect(tcpConnector(host, port), options);
}
