/**
 * uniway-client: the client endpoint of the uniway/fastway gateway
 * protocol, for browsers and Node, with no runtime dependencies.
 *
 * ```ts
 * import { connect } from "uniway-client";
 * const client = await connect("ws://127.0.0.1:4002/");
 * const vconn = await client.dial(1);
 * vconn.send("hello");
 * for await (const msg of vconn) console.log(new TextDecoder().decode(msg));
 * ```
 *
 * TCP (Node only) is in `uniway-client/node`.
 *
 * @module
 */

export { Client, connect } from "./client.js";
export type { ClientEvents, ClientOptions, LinkLoss, ReconnectOptions } from "./client.js";
export { VConn } from "./vconn.js";
export type { Message, VConnEvents } from "./vconn.js";
export { webSocketConnector } from "./link.js";
export type { Connector, Link, LinkHandlers, WebSocketClass, WebSocketLike, WebSocketOptions } from "./link.js";
export {
  ClosedError,
  DialTimeoutError,
  LinkError,
  PingTimeoutError,
  ProtocolError,
  RefusedError,
  TooLargeError,
  UniwayError,
} from "./errors.js";
export type { ClosedBy, ErrorCode } from "./errors.js";
export { DEFAULT_MAX_PACKET, FrameDecoder, encodeData } from "./frame.js";
export type { Frame, GatewayCommand } from "./frame.js";
