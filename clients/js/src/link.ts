/**
 * Links: the byte stream under the frames. A link is opened by a
 * {@link Connector}; the client sends whole frames on it and is told of the
 * bytes that arrive and of its end. This module has the WebSocket link,
 * which runs in browsers and in Node; `uniway-client/node` adds TCP.
 *
 * @module
 */

import { LinkError, ProtocolError } from "./errors.js";

/** What a link tells the client. */
export interface LinkHandlers {
  /** Bytes arrived (any part of the stream: part of a frame, or several). */
  data(bytes: Uint8Array): void;
  /** The link ended; it says nothing more after this. */
  end(error: LinkError | ProtocolError): void;
}

/** An open link to the gateway. */
export interface Link {
  /** Sends bytes (one or more whole frames). */
  send(bytes: Uint8Array): void;
  /** Closes the link; `end` follows. */
  close(): void;
}

/** Opens a link; resolves once it can carry frames, rejects with a
 * {@link LinkError} if it cannot be opened. */
export type Connector = (handlers: LinkHandlers) => Promise<Link>;

/** The part of the WebSocket API the link uses (browsers' `WebSocket`, the
 * `ws` package's, or Node's own in Node 22 and later). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string }) => void) | null;
}

/** A WebSocket class: `new WebSocket(url, protocols)`. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of {@link webSocketConnector}. */
export interface WebSocketOptions {
  /** The WebSocket class to use; by default `globalThis.WebSocket`
   * (browsers, Node 22+). In older Node pass the `ws` package's. */
  WebSocket?: WebSocketClass;
  /** Subprotocols to ask for. */
  protocols?: string | string[];
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (Array.isArray(data)) {
    // The `ws` package's "fragments" binary type: join the pieces.
    const parts = data.map(toBytes);
    if (parts.some((p) => p === undefined)) return undefined;
    const total = parts.reduce((n, p) => n + (p as Uint8Array).length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts as Uint8Array[]) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  return undefined;
}

/**
 * A connector for the gateway's WebSocket listener (`-ClientWsAddr`, WSS
 * with `-ClientWsTlsCert`), e.g. `ws://127.0.0.1:4002/`. The gateway
 * sends binary messages only; a text message ends the link as a
 * {@link ProtocolError}.
 */
export function webSocketConnector(url: string, options: WebSocketOptions = {}): Connector {
  return (handlers) =>
    new Promise<Link>((resolve, reject) => {
      const Ws =
        options.WebSocket ??
        (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
      if (!Ws) {
        reject(
          new LinkError(
            "no WebSocket class: pass one as the `WebSocket` option (the `ws` package in Node before 22)",
          ),
        );
        return;
      }
      let ws: WebSocketLike;
      try {
        ws = options.protocols === undefined ? new Ws(url) : new Ws(url, options.protocols);
      } catch (e) {
        reject(new LinkError(`cannot open a WebSocket to ${url}: ${String(e)}`, undefined, undefined, { cause: e }));
        return;
      }
      ws.binaryType = "arraybuffer";
      let open = false;
      let ended = false;
      let failure = "";
      const finish = (error: LinkError | ProtocolError) => {
        if (ended) return;
        ended = true;
        if (open) handlers.end(error);
        else reject(error);
      };
      ws.onopen = () => {
        open = true;
        resolve({
          send: (bytes) => ws.send(bytes),
          close: () => ws.close(1000),
        });
      };
      ws.onmessage = (ev) => {
        if (ended) return;
        const bytes = toBytes(ev.data);
        if (!bytes) {
          finish(new ProtocolError("the gateway sent a text WebSocket message (it sends binary only)"));
          ws.close(1003);
          return;
        }
        handlers.data(bytes);
      };
      ws.onclose = (ev) => {
        const what = open ? "the WebSocket to the gateway closed" : `cannot open a WebSocket to ${url}`;
        const reason = ev.reason ? `: ${ev.reason}` : failure ? `: ${failure}` : "";
        finish(new LinkError(`${what} (code ${ev.code}${reason})`, ev.code, ev.reason));
      };
      ws.onerror = (ev) => {
        // A close event follows; browsers say nothing more, Node's `ws` does.
        if (typeof ev.message === "string") failure = ev.message;
      };
    });
}
