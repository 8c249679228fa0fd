/**
 * The errors the client raises. Each is an {@link UniwayError} with a
 * `code` to switch on; each says what happened and, where the gateway
 * caused it, what the gateway did.
 *
 * @module
 */

/** What kind of failure an error is. */
export type ErrorCode =
  | "REFUSED"
  | "CLOSED"
  | "TOO_LARGE"
  | "LINK"
  | "PING_TIMEOUT"
  | "DIAL_TIMEOUT"
  | "PROTOCOL";

/** The base of every error this package raises. */
export class UniwayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The gateway answered a dial with Refuse: no server has that ID, or the
 * client (or the server) has as many vconns as the gateway allows
 * (`-ClientMaxConn`).
 */
export class RefusedError extends UniwayError {
  constructor(readonly remoteId: number) {
    super(
      "REFUSED",
      `the gateway refused the dial to server ${remoteId} (no such server, or a vconn limit reached)`,
    );
  }
}

/** Who ended a vconn. */
export type ClosedBy =
  /** This client called `close()`. */
  | "local"
  /** The gateway sent Close: the server closed it, the server went away, or
   * the client sent on a vconn the gateway no longer had. */
  | "gateway"
  /** The link to the gateway ended, taking every vconn with it. */
  | "link";

/** A send or receive on a vconn that has ended. */
export class ClosedError extends UniwayError {
  constructor(
    readonly connId: number,
    readonly by: ClosedBy,
    options?: { cause?: unknown },
  ) {
    super("CLOSED", `vconn ${connId} is closed (${describe(by)})`, options);
  }
}

function describe(by: ClosedBy): string {
  switch (by) {
    case "local":
      return "closed by this client";
    case "gateway":
      return "the gateway sent Close";
    case "link":
      return "the link to the gateway ended";
  }
}

/** A message too large for one frame of the gateway's `MaxPacket`. */
export class TooLargeError extends UniwayError {
  constructor(
    readonly size: number,
    readonly maxPacket: number,
  ) {
    super(
      "TOO_LARGE",
      `a message of ${size} bytes does not fit a frame (MaxPacket ${maxPacket} allows ${maxPacket - 4})`,
    );
  }
}

/**
 * The link to the gateway failed or ended: it could not be opened, the
 * socket closed (with the WebSocket close code and reason, when there was
 * one), or the client was closed.
 */
export class LinkError extends UniwayError {
  constructor(
    message: string,
    readonly closeCode?: number,
    readonly closeReason?: string,
    options?: { cause?: unknown },
  ) {
    super("LINK", message, options);
  }
}

/** No Ping came back within `pingTimeout`: the gateway or the path is gone. */
export class PingTimeoutError extends UniwayError {
  constructor(readonly timeoutMs: number) {
    super("PING_TIMEOUT", `no Ping came back from the gateway within ${timeoutMs} ms`);
  }
}

/** The gateway did not answer a dial within `dialTimeout`. */
export class DialTimeoutError extends UniwayError {
  constructor(
    readonly remoteId: number,
    readonly timeoutMs: number,
  ) {
    super("DIAL_TIMEOUT", `no answer to the dial to server ${remoteId} within ${timeoutMs} ms`);
  }
}

/** The gateway sent something the protocol does not allow. */
export class ProtocolError extends UniwayError {
  constructor(message: string) {
    super("PROTOCOL", message);
  }
}
