/**
 * A virtual connection: one message channel between this client and one
 * server, multiplexed with the others over the client's link.
 *
 * @module
 */

import { ClosedError, TooLargeError } from "./errors.js";
import { encodeData } from "./frame.js";
import { AsyncQueue, Emitter } from "./queue.js";

/** A message to send: bytes, or a string (sent as UTF-8). */
export type Message = Uint8Array | string;

/** Events of a {@link VConn}. */
export interface VConnEvents {
  [event: string]: (...args: never[]) => void;
  /** A message arrived. While any listener is on, messages go to the
   * listeners and not to `recv()` or `for await`; messages that arrived
   * before the first listener was added go to it then. */
  message: (message: Uint8Array) => void;
  /** The vconn ended, and why. */
  close: (reason: ClosedError) => void;
}

/** What a vconn needs from its client. */
export interface VConnOwner {
  readonly maxPacket: number;
  sendFrame(bytes: Uint8Array): void;
  closeVConn(vconn: VConn): void;
}

const encoder = new TextEncoder();

/**
 * A vconn: `send` messages to the server at its other end, take what the
 * server sends with `recv()`, `for await`, or the `message` event, and
 * `close()` it. It ends when either side closes it or the link ends; sends
 * then throw, and receives reject once the messages that came before the
 * end are taken.
 */
export class VConn extends Emitter<VConnEvents> {
  private readonly queue = new AsyncQueue<Uint8Array>();
  private endReason: ClosedError | undefined;
  private closing = false;
  private resolveClosed!: (reason: ClosedError) => void;

  /** Resolves, with the reason, when the vconn has ended. */
  readonly closed: Promise<ClosedError>;

  /** @internal Made by the client. */
  constructor(
    private readonly owner: VConnOwner,
    /** The conn ID the gateway gave this vconn. */
    readonly connId: number,
    /** The server at the other end. */
    readonly remoteId: number,
    /** Who opened it: this client (`dial`), or the server. */
    readonly dialedBy: "client" | "server",
  ) {
    super();
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** Whether the vconn has ended or this client has closed it. */
  get isClosed(): boolean {
    return this.closing || this.endReason !== undefined;
  }

  /** Messages received and not yet taken. */
  get queued(): number {
    return this.queue.size;
  }

  /**
   * Sends one message. Throws a {@link ClosedError} if the vconn has ended,
   * a {@link TooLargeError} if the message does not fit one frame of the
   * gateway's `MaxPacket` (nothing is sent then).
   */
  send(message: Message): void {
    if (this.endReason) throw this.endReason;
    if (this.closing) throw new ClosedError(this.connId, "local");
    const bytes = typeof message === "string" ? encoder.encode(message) : message;
    if (bytes.length + 4 > this.owner.maxPacket) {
      throw new TooLargeError(bytes.length, this.owner.maxPacket);
    }
    this.owner.sendFrame(encodeData(this.connId, bytes));
  }

  /** The next message; rejects with the {@link ClosedError} once the vconn
   * has ended and every message before the end has been taken. */
  recv(): Promise<Uint8Array> {
    return this.queue.take();
  }

  /** Every message until the vconn ends. */
  [Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    return this.queue.iterate();
  }

  /** Closes the vconn (sends Close; the gateway tells the server). Messages
   * already received can still be taken. Closing twice does nothing. */
  close(): void {
    if (this.isClosed) return;
    this.closing = true;
    this.owner.closeVConn(this);
  }

  /** Messages that came before the first `message` listener go to it. */
  protected override listened(event: keyof VConnEvents): void {
    if (event !== "message") return;
    for (const m of this.queue.drain()) this.emit("message", m);
  }

  /** @internal A message for this vconn arrived. */
  deliver(message: Uint8Array): void {
    if (this.isClosed) return;
    if (this.listening("message")) this.emit("message", message);
    else this.queue.push(message);
  }

  /** @internal The vconn has ended. */
  end(reason: ClosedError): void {
    if (this.endReason) return;
    this.endReason = reason;
    this.queue.end(reason);
    this.resolveClosed(reason);
    this.emit("close", reason);
  }
}
