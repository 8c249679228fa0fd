/**
 * The frames of the uniway protocol (docs/protocol.md §2-§3): encoding the
 * frames a client sends, and a decoder that turns a byte stream, in chunks
 * of any size, back into frames.
 *
 * A frame is `Length u32 | Conn ID u32 | message`, little-endian, where
 * Length counts the Conn ID and the message. Conn ID 0 carries a command.
 *
 * @module
 */

import { ProtocolError } from "./errors.js";

/** The gateway's default largest Length (512 KiB). */
export const DEFAULT_MAX_PACKET = 512 * 1024;

/** The largest decode buffer kept while empty. */
const RETAINED_BUFFER = 64 * 1024;

/** Bytes before a frame's message: Length and Conn ID. */
export const HEADER_SIZE = 8;

/** Command types (the first byte of a command frame's message). */
export enum Cmd {
  Dial = 0,
  Accept = 1,
  Connect = 2,
  Refuse = 3,
  Close = 4,
  Ping = 5,
}

/** A command the gateway sends a client. */
export type GatewayCommand =
  | { type: Cmd.Accept; connId: number; remoteId: number }
  | { type: Cmd.Connect; connId: number; remoteId: number }
  | { type: Cmd.Refuse; remoteId: number }
  | { type: Cmd.Close; connId: number }
  | { type: Cmd.Ping };

/** One frame out of the decoder. */
export type Frame =
  | { kind: "data"; connId: number; message: Uint8Array }
  | { kind: "command"; command: GatewayCommand };

/** A data frame carrying `message` on vconn `connId`. */
export function encodeData(connId: number, message: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + message.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 4 + message.length, true);
  v.setUint32(4, connId, true);
  out.set(message, HEADER_SIZE);
  return out;
}

function command(type: Cmd, arg?: number): Uint8Array {
  const len = arg === undefined ? 5 : 9;
  const out = new Uint8Array(4 + len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setUint32(4, 0, true);
  v.setUint8(8, type);
  if (arg !== undefined) v.setUint32(9, arg, true);
  return out;
}

/** `Dial(remoteId)`: open a vconn to a server. */
export function encodeDial(remoteId: number): Uint8Array {
  return command(Cmd.Dial, remoteId);
}

/** `Close(connId)`: close a vconn. */
export function encodeClose(connId: number): Uint8Array {
  return command(Cmd.Close, connId);
}

/** `Ping`: keep-alive; the gateway answers with a Ping. */
export function encodePing(): Uint8Array {
  return command(Cmd.Ping);
}

/** The Length each command the gateway may send a client must have. */
const COMMAND_LENGTH: Record<number, number> = {
  [Cmd.Accept]: 13,
  [Cmd.Connect]: 13,
  [Cmd.Refuse]: 9,
  [Cmd.Close]: 9,
  [Cmd.Ping]: 5,
};

function parseCommand(body: Uint8Array): GatewayCommand {
  // body: Conn ID (0), Type, arguments.
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const type = body[4];
  if (type === undefined) {
    throw new ProtocolError("the gateway sent an empty command frame");
  }
  const want = COMMAND_LENGTH[type];
  if (want === undefined) {
    throw new ProtocolError(`the gateway sent an unknown command type ${type}`);
  }
  if (body.length !== want) {
    throw new ProtocolError(
      `the gateway sent command type ${type} with Length ${body.length} (it must be ${want})`,
    );
  }
  switch (type) {
    case Cmd.Accept:
      return { type, connId: v.getUint32(5, true), remoteId: v.getUint32(9, true) };
    case Cmd.Connect:
      return { type, connId: v.getUint32(5, true), remoteId: v.getUint32(9, true) };
    case Cmd.Refuse:
      return { type, remoteId: v.getUint32(5, true) };
    case Cmd.Close:
      return { type, connId: v.getUint32(5, true) };
    default:
      return { type: Cmd.Ping };
  }
}

/**
 * Reassembles frames from a byte stream. Feed it chunks as they come (a
 * chunk may hold part of a frame, or several); it yields whole frames.
 * A Length under 4 or over `maxPacket` is a {@link ProtocolError}.
 */
export class FrameDecoder {
  private buf = new Uint8Array(0);
  private start = 0;
  private end = 0;

  constructor(private readonly maxPacket: number = DEFAULT_MAX_PACKET) {}

  /** Bytes held that do not yet make a whole frame. */
  get pending(): number {
    return this.end - this.start;
  }

  /** Adds `chunk` and returns every frame now complete, in order. */
  push(chunk: Uint8Array): Frame[] {
    this.append(chunk);
    const frames: Frame[] = [];
    const v = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    while (this.end - this.start >= 4) {
      const length = v.getUint32(this.start, true);
      if (length < 4 || length > this.maxPacket) {
        throw new ProtocolError(
          `the gateway sent a frame with Length ${length} (allowed 4 to ${this.maxPacket})`,
        );
      }
      if (this.end - this.start < 4 + length) break;
      const body = this.buf.slice(this.start + 4, this.start + 4 + length);
      this.start += 4 + length;
      const connId = new DataView(body.buffer).getUint32(0, true);
      if (connId === 0) {
        frames.push({ kind: "command", command: parseCommand(body) });
      } else {
        frames.push({ kind: "data", connId, message: body.subarray(4) });
      }
    }
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
      // A large frame's buffer is not kept once it is consumed.
      if (this.buf.length > RETAINED_BUFFER) this.buf = new Uint8Array(0);
    }
    return frames;
  }

  private append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      if (held + chunk.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = new Uint8Array(Math.max(held + chunk.length, this.buf.length * 2, 4096));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
