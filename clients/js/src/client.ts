/**
 * The client endpoint (docs/protocol.md §5 and §8): one link to the
 * gateway, the vconns over it, dials and their answers, keep-alive, and an
 * optional redial of a link that broke.
 *
 * @module
 */

import {
  ClosedError,
  DialTimeoutError,
  LinkError,
  PingTimeoutError,
  ProtocolError,
  RefusedError,
  UniwayError,
} from "./errors.js";
import { Cmd, DEFAULT_MAX_PACKET, encodeClose, encodeDial, encodePing, FrameDecoder } from "./frame.js";
import type { GatewayCommand } from "./frame.js";
import { webSocketConnector } from "./link.js";
import type { Connector, Link } from "./link.js";
import { AsyncQueue, Emitter } from "./queue.js";
import { VConn } from "./vconn.js";
import type { VConnOwner } from "./vconn.js";

/** When and how often to redial a link that broke. */
export interface ReconnectOptions {
  /** Wait before the first redial, ms (doubled after each failure). Default 500. */
  initialDelay?: number;
  /** The longest wait between redials, ms. Default 10,000. */
  maxDelay?: number;
  /** Redials before giving up (then the client closes). Default: no limit. */
  maxAttempts?: number;
}

/** Options of a {@link Client}. */
export interface ClientOptions {
  /** The gateway's `MaxPacket` (largest frame Length). A message over
   * `maxPacket - 4` bytes is refused before it is sent. Default 512 KiB. */
  maxPacket?: number;
  /** Send a Ping this often, ms; 0 turns keep-alive off. It must be shorter
   * than the gateway's `ClientIdleTimeout` (30 s by default). Default 10,000. */
  pingInterval?: number;
  /** How long a Ping may go unanswered, ms. Default 5,000. */
  pingTimeout?: number;
  /** Called when a Ping went unanswered: return true to keep the link.
   * Without it (or on false) the link is closed with a {@link PingTimeoutError}. */
  onPingTimeout?: () => boolean;
  /** How long a dial waits for the gateway's answer, ms; 0 waits for ever.
   * Default 10,000. */
  dialTimeout?: number;
  /** Redial the link when it breaks (true for the defaults). The vconns of
   * the broken link are lost: plain TCP and WebSocket links cannot resume
   * (native clients that need that use snet). Default off. */
  reconnect?: boolean | ReconnectOptions;
}

/** What the `lost` event says. */
export interface LinkLoss {
  /** Why the link ended. */
  error: UniwayError;
  /** The vconns that ended with it. */
  vconns: VConn[];
  /** Whether the client will redial. */
  reconnecting: boolean;
}

/** Events of a {@link Client}. */
export interface ClientEvents {
  [event: string]: (...args: never[]) => void;
  /** A server dialed this client. While any listener is on, new vconns go
   * to the listeners and not to `accept()` or `incoming()`; those that came
   * before the first listener was added go to it then. */
  vconn: (vconn: VConn) => void;
  /** The link ended other than by `close()`. */
  lost: (loss: LinkLoss) => void;
  /** A redial succeeded: the client can dial again. */
  reconnect: () => void;
  /** The client is done: `close()` was called (no error), or the link
   * ended and will not be redialed (the error). */
  close: (error?: UniwayError) => void;
}

interface PendingDial {
  resolve: (vc: VConn) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Timed out: an Accept that still comes is closed at once. */
  abandoned: boolean;
}

/**
 * A client of the gateway. Make one with {@link connect} (WebSocket),
 * `connectTcp` from `uniway-client/node`, or {@link Client.connect} with
 * any {@link Connector}.
 */
export class Client extends Emitter<ClientEvents> implements VConnOwner {
  /** The gateway's `MaxPacket` this client holds messages to. */
  readonly maxPacket: number;
  private readonly pingInterval: number;
  private readonly pingTimeout: number;
  private readonly dialTimeout: number;
  private readonly reconnect: Required<ReconnectOptions> | undefined;

  private link: Link | undefined;
  private readonly vconns = new Map<number, VConn>();
  private readonly dials = new Map<number, PendingDial[]>();
  private readonly incomingQueue = new AsyncQueue<VConn>();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private redialTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why the link is being closed by this side (a ping timeout, bad input). */
  private endCause: UniwayError | undefined;
  private done = false;
  /** Waiters for the link while a redial is under way. */
  private linkWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  private constructor(
    private readonly connector: Connector,
    private readonly options: ClientOptions,
  ) {
    super();
    this.maxPacket = options.maxPacket ?? DEFAULT_MAX_PACKET;
    this.pingInterval = options.pingInterval ?? 10_000;
    this.pingTimeout = options.pingTimeout ?? 5_000;
    this.dialTimeout = options.dialTimeout ?? 10_000;
    if (!(this.maxPacket >= 4)) throw new RangeError("maxPacket must be at least 4");
    if (!(this.pingInterval >= 0) || !(this.pingTimeout > 0) || !(this.dialTimeout >= 0)) {
      throw new RangeError("pingInterval and dialTimeout must be >= 0, pingTimeout > 0");
    }
    const r = options.reconnect;
    if (r) {
      const o = r === true ? {} : r;
      this.reconnect = {
        initialDelay: o.initialDelay ?? 500,
        maxDelay: o.maxDelay ?? 10_000,
        maxAttempts: o.maxAttempts ?? Infinity,
      };
    }
  }

  /** Opens a link with `connector` and resolves with the client once it is
   * up; rejects with a {@link LinkError} if the link cannot be opened. */
  static async connect(connector: Connector, options: ClientOptions = {}): Promise<Client> {
    const client = new Client(connector, options);
    await client.openLink();
    return client;
  }

  /** Whether the link is up (false while redialing and once closed). */
  get connected(): boolean {
    return this.link !== undefined;
  }

  /** Live vconns. */
  get vconnCount(): number {
    return this.vconns.size;
  }

  /**
   * Opens a vconn to server `serverId`. Resolves with the vconn on the
   * gateway's Accept; rejects with a {@link RefusedError} on Refuse, a
   * {@link DialTimeoutError} without an answer, a {@link LinkError} if the
   * link ends first. While a redial is under way it waits for the link.
   */
  async dial(serverId: number): Promise<VConn> {
    if (!Number.isInteger(serverId) || serverId < 0 || serverId > 0xffffffff) {
      throw new RangeError(`server ID ${serverId} is not a u32`);
    }
    if (!this.link) await this.waitForLink();
    const link = this.link as Link;
    return new Promise<VConn>((resolve, reject) => {
      const pending: PendingDial = { resolve, reject, timer: undefined, abandoned: false };
      if (this.dialTimeout > 0) {
        pending.timer = setTimeout(() => {
          pending.abandoned = true;
          reject(new DialTimeoutError(serverId, this.dialTimeout));
        }, this.dialTimeout);
      }
      let queue = this.dials.get(serverId);
      if (!queue) {
        queue = [];
        this.dials.set(serverId, queue);
      }
      queue.push(pending);
      link.send(encodeDial(serverId));
    });
  }

  /** The next vconn a server dialed to this client; rejects with a
   * {@link LinkError} once the client is closed. */
  accept(): Promise<VConn> {
    return this.incomingQueue.take();
  }

  /** Every vconn a server dials to this client, until it closes. */
  incoming(): AsyncGenerator<VConn, void, undefined> {
    return this.incomingQueue.iterate();
  }

  /** Closes the link and every vconn; the client is done. */
  close(): void {
    if (this.done) return;
    this.finish(undefined);
    const link = this.link;
    this.link = undefined;
    link?.close();
  }

  /** Vconns that servers dialed before the first `vconn` listener go to it. */
  protected override listened(event: keyof ClientEvents): void {
    if (event !== "vconn") return;
    for (const vc of this.incomingQueue.drain()) this.emit("vconn", vc);
  }

  /** @internal */
  sendFrame(bytes: Uint8Array): void {
    if (!this.link) throw new LinkError("the link to the gateway is down");
    this.link.send(bytes);
  }

  /** @internal A vconn's `close()`: tell the gateway; the vconn ends when
   * its Close comes back (frames before it are dropped). */
  closeVConn(vconn: VConn): void {
    if (this.link && this.vconns.get(vconn.connId) === vconn) {
      this.link.send(encodeClose(vconn.connId));
    } else {
      this.vconns.delete(vconn.connId);
      vconn.end(new ClosedError(vconn.connId, "local"));
    }
  }

  private async openLink(): Promise<void> {
    const decoder = new FrameDecoder(this.maxPacket);
    let link: Link | undefined;
    const opened = await this.connector({
      data: (bytes) => {
        if (this.link !== link) return;
        this.onData(decoder, bytes);
      },
      end: (error) => {
        if (this.link !== link) return;
        this.onLinkEnd(error);
      },
    });
    link = opened;
    if (this.done) {
      opened.close();
      throw new LinkError("the client was closed");
    }
    this.link = opened;
    this.endCause = undefined;
    this.startPings();
    for (const w of this.linkWaiters.splice(0)) w.resolve();
  }

  private waitForLink(): Promise<void> {
    if (this.done) return Promise.reject(new LinkError("the client is closed"));
    return new Promise((resolve, reject) => this.linkWaiters.push({ resolve, reject }));
  }

  private onData(decoder: FrameDecoder, bytes: Uint8Array): void {
    let frames;
    try {
      frames = decoder.push(bytes);
    } catch (e) {
      this.fail(e instanceof UniwayError ? e : new ProtocolError(String(e)));
      return;
    }
    for (const f of frames) {
      if (!this.link) return;
      if (f.kind === "data") {
        this.vconns.get(f.connId)?.deliver(f.message);
      } else {
        this.onCommand(f.command);
      }
    }
  }

  private onCommand(c: GatewayCommand): void {
    switch (c.type) {
      case Cmd.Accept: {
        const pending = this.dials.get(c.remoteId)?.shift();
        if (!pending) {
          this.fail(new ProtocolError(`the gateway sent Accept(${c.connId}, ${c.remoteId}) for no dial`));
          return;
        }
        if (pending.timer) clearTimeout(pending.timer);
        const vc = new VConn(this, c.connId, c.remoteId, "client");
        this.vconns.set(c.connId, vc);
        if (pending.abandoned) vc.close();
        else pending.resolve(vc);
        return;
      }
      case Cmd.Refuse: {
        const pending = this.dials.get(c.remoteId)?.shift();
        if (!pending) {
          this.fail(new ProtocolError(`the gateway sent Refuse(${c.remoteId}) for no dial`));
          return;
        }
        if (pending.timer) clearTimeout(pending.timer);
        if (!pending.abandoned) pending.reject(new RefusedError(c.remoteId));
        return;
      }
      case Cmd.Connect: {
        if (this.vconns.has(c.connId)) {
          this.fail(new ProtocolError(`the gateway sent Connect for vconn ${c.connId}, which is live`));
          return;
        }
        const vc = new VConn(this, c.connId, c.remoteId, "server");
        this.vconns.set(c.connId, vc);
        if (this.listening("vconn")) this.emit("vconn", vc);
        else this.incomingQueue.push(vc);
        return;
      }
      case Cmd.Close: {
        const vc = this.vconns.get(c.connId);
        if (!vc) return;
        this.vconns.delete(c.connId);
        vc.end(new ClosedError(c.connId, vc.isClosed ? "local" : "gateway"));
        return;
      }
      case Cmd.Ping:
        if (this.pongTimer) clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        return;
    }
  }

  private startPings(): void {
    if (this.pingInterval === 0) return;
    this.pingTimer = setInterval(() => {
      if (!this.link) return;
      this.link.send(encodePing());
      if (this.pongTimer) return;
      this.pongTimer = setTimeout(() => {
        this.pongTimer = undefined;
        if (this.options.onPingTimeout?.()) return;
        this.fail(new PingTimeoutError(this.pingTimeout));
      }, this.pingTimeout);
    }, this.pingInterval);
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.pingTimer = undefined;
    this.pongTimer = undefined;
  }

  /** Ends the link from this side, for `cause`. */
  private fail(cause: UniwayError): void {
    const link = this.link;
    if (!link) return;
    this.endCause = cause;
    this.onLinkEnd(cause);
    link.close();
  }

  /** Ends every vconn and pending dial of the link that ended. */
  private dropLinkState(error: UniwayError, by: "local" | "link"): VConn[] {
    this.stopTimers();
    const lost = [...this.vconns.values()];
    this.vconns.clear();
    for (const vc of lost) vc.end(new ClosedError(vc.connId, by, { cause: error }));
    for (const queue of this.dials.values()) {
      for (const d of queue) {
        if (d.timer) clearTimeout(d.timer);
        if (!d.abandoned) d.reject(error);
      }
    }
    this.dials.clear();
    return lost;
  }

  private onLinkEnd(error: UniwayError): void {
    if (!this.link || this.done) return;
    this.link = undefined;
    const cause = this.endCause ?? error;
    const vconns = this.dropLinkState(cause, "link");
    const reconnecting = this.reconnect !== undefined;
    this.emit("lost", { error: cause, vconns, reconnecting });
    if (reconnecting) this.redial(0, cause);
    else this.finish(cause);
  }

  private redial(attempt: number, last: UniwayError): void {
    const r = this.reconnect as Required<ReconnectOptions>;
    if (attempt >= r.maxAttempts) {
      this.finish(last);
      return;
    }
    const delay = Math.min(r.maxDelay, r.initialDelay * 2 ** Math.min(attempt, 30));
    this.redialTimer = setTimeout(() => {
      this.redialTimer = undefined;
      this.openLink().then(
        () => this.emit("reconnect"),
        (e: unknown) => {
          if (this.done) return;
          const err = e instanceof UniwayError ? e : new LinkError(String(e), undefined, undefined, { cause: e });
          this.redial(attempt + 1, err);
        },
      );
    }, delay);
  }

  /** The client is done: everything ends with `error` (none: closed here). */
  private finish(error: UniwayError | undefined): void {
    if (this.done) return;
    this.done = true;
    if (this.redialTimer) clearTimeout(this.redialTimer);
    const reason = error ?? new LinkError("the client was closed");
    this.dropLinkState(reason, error ? "link" : "local");
    this.incomingQueue.end(reason);
    for (const w of this.linkWaiters.splice(0)) w.reject(reason);
    this.emit("close", error);
  }
}

/**
 * Connects to a gateway's WebSocket listener (`ws://` or `wss://`), in a
 * browser or in Node (pass the `ws` package's class as `WebSocket` before
 * Node 22).
 */
export function connect(
  url: string,
  options: ClientOptions & { WebSocket?: import("./link.js").WebSocketClass; protocols?: string | string[] } = {},
): Promise<Client> {
  const wsOptions: import("./link.js").WebSocketOptions = {};
  if (options.WebSocket) wsOptions.WebSocket = options.WebSocket;
  if (options.protocols !== undefined) wsOptions.protocols = options.protocols;
  return Client.connect(webSocketConnector(url, wsOptions), options);
}
