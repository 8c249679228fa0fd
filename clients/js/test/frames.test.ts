/**
 * The frames byte for byte (docs/protocol.md §3's examples), the decoder
 * over every way a stream can be cut, and the client's own rules on a
 * scripted link: frames split across messages and several in one, dial
 * answers in order, a dial timeout's late Accept, a Ping that never comes
 * back, and bad input from the gateway.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Client, DialTimeoutError, FrameDecoder, PingTimeoutError, ProtocolError, RefusedError } from "../src/index.js";
import type { Connector, Frame, LinkHandlers, UniwayError } from "../src/index.js";
import { encodeClose, encodeData, encodeDial, encodePing } from "../src/frame.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").replace(/(..)(?!$)/g, "$1 ");
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/ /g, ""), "hex"));
const utf8 = (s: string) => new TextEncoder().encode(s);

describe("frames", () => {
  test("the client's frames are the protocol's bytes", () => {
    assert.equal(hex(encodeDial(1)), "09 00 00 00 00 00 00 00 00 01 00 00 00");
    assert.equal(hex(encodeClose(9527)), "09 00 00 00 00 00 00 00 04 37 25 00 00");
    assert.equal(hex(encodePing()), "05 00 00 00 00 00 00 00 05");
    assert.equal(hex(encodeData(9527, utf8("Hello"))), "09 00 00 00 37 25 00 00 48 65 6c 6c 6f");
  });

  test("the gateway's frames decode, cut anywhere", () => {
    const stream = bytes(
      "0d 00 00 00 00 00 00 00 01 37 25 00 00 01 00 00 00" + // Accept(9527, 1)
        "0d 00 00 00 00 00 00 00 02 38 25 00 00 01 00 00 00" + // Connect(9528, 1)
        "09 00 00 00 00 00 00 00 03 01 00 00 00" + // Refuse(1)
        "09 00 00 00 37 25 00 00 48 65 6c 6c 6f" + // "Hello" on 9527
        "04 00 00 00 37 25 00 00" + // empty message on 9527
        "09 00 00 00 00 00 00 00 04 37 25 00 00" + // Close(9527)
        "05 00 00 00 00 00 00 00 05", // Ping
    );
    const want: Frame[] = [
      { kind: "command", command: { type: 1, connId: 9527, remoteId: 1 } },
      { kind: "command", command: { type: 2, connId: 9528, remoteId: 1 } },
      { kind: "command", command: { type: 3, remoteId: 1 } },
      { kind: "data", connId: 9527, message: utf8("Hello") },
      { kind: "data", connId: 9527, message: new Uint8Array(0) },
      { kind: "command", command: { type: 4, connId: 9527 } },
      { kind: "command", command: { type: 5 } },
    ];
    // Whole, one byte at a time, and cut in two at every offset.
    const ways: Uint8Array[][] = [[stream], [...stream].map((b) => Uint8Array.of(b))];
    for (let cut = 1; cut < stream.length; cut++) ways.push([stream.subarray(0, cut), stream.subarray(cut)]);
    for (const chunks of ways) {
      const d = new FrameDecoder();
      const got = chunks.flatMap((c) => d.push(c));
      assert.deepEqual(got, want);
      assert.equal(d.pending, 0);
    }
  });

  test("what the gateway may not send is a ProtocolError", () => {
    const bad = [
      ["03 00 00 00 00 00 00 00", /Length 3/],
      ["01 00 08 00 01 00 00 00", /Length 524289/],
      ["05 00 00 00 00 00 00 00 09", /unknown command type 9/],
      ["05 00 00 00 00 00 00 00 00", /unknown command type 0/], // Dial is not the gateway's
      ["09 00 00 00 00 00 00 00 05 00 00 00 00", /type 5 with Length 9/],
      ["05 00 00 00 00 00 00 00 04", /type 4 with Length 5/],
    ] as const;
    for (const [h, re] of bad) {
      assert.throws(() => new FrameDecoder().push(bytes(h)), (e: unknown) => e instanceof ProtocolError && re.test(e.message), h);
    }
    // A smaller MaxPacket is held to.
    assert.throws(() => new FrameDecoder(100).push(bytes("65 00 00 00")), ProtocolError);
    assert.equal(new FrameDecoder(100).push(bytes("64 00 00 00")).length, 0);
  });
});

/** A link whose gateway side the test plays. */
class ScriptedGateway {
  handlers: LinkHandlers | undefined;
  sent: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder();
  private readonly raw: Uint8Array[] = [];

  readonly connector: Connector = async (handlers) => {
    this.handlers = handlers;
    return {
      send: (b) => {
        this.raw.push(b);
        // Decode the client's frames with the same rules (a client's Dial
        // has type 0, which the gateway-side decoder would refuse).
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const connId = view.getUint32(4, true);
        if (connId === 0 && b[8] === 0) {
          this.sent.push({ kind: "command", command: { type: 0, remoteId: view.getUint32(9, true) } as never });
        } else {
          this.sent.push(...this.decoder.push(b));
        }
      },
      close: () => {
        this.closed = true;
      },
    };
  };

  /** Sends `stream` to the client in pieces of `piece` bytes. */
  deliver(stream: Uint8Array, piece = stream.length): void {
    for (let at = 0; at < stream.length; at += piece) {
      this.handlers?.data(stream.subarray(at, Math.min(stream.length, at + piece)));
    }
  }
}

const accept = (c: number, r: number) => cmd(1, c, r);
const connectCmd = (c: number, r: number) => cmd(2, c, r);
const refuse = (r: number) => cmd(3, r);
const close = (c: number) => cmd(4, c);
function cmd(type: number, a: number, b?: number): Uint8Array {
  const len = b === undefined ? 9 : 13;
  const out = new Uint8Array(4 + len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setUint8(8, type);
  v.setUint32(9, a, true);
  if (b !== undefined) v.setUint32(13, b, true);
  return out;
}
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

describe("the client on a scripted link", () => {
  test("frames split across messages, and several in one, reach their vconns in order", async () => {
    for (const piece of [1, 3, 7, 13, 1000]) {
      const gw = new ScriptedGateway();
      const client = await Client.connect(gw.connector, { pingInterval: 0 });
      const dials = [client.dial(1), client.dial(1), client.dial(2)];
      gw.deliver(concat(accept(10, 1), refuse(1), accept(11, 2), connectCmd(12, 1)), piece);
      const first = await dials[0];
      await assert.rejects(dials[1] as Promise<unknown>, RefusedError);
      const third = await dials[2];
      assert.deepEqual([first?.connId, third?.connId], [10, 11]);
      const byServer = await client.accept();
      assert.equal(byServer.connId, 12);
      const stream: Uint8Array[] = [];
      for (let i = 0; i < 50; i++) {
        stream.push(encodeData(10 + (i % 3), utf8(`m${i}`)));
      }
      stream.push(close(11));
      gw.deliver(concat(...stream), piece);
      const got = new Map<number, string[]>();
      for (const vc of [first, third, byServer]) {
        const list: string[] = [];
        got.set(vc!.connId, list);
        while (vc!.queued > 0) list.push(new TextDecoder().decode(await vc!.recv()));
      }
      for (const [id, list] of got) {
        const want = [...Array(50).keys()].filter((i) => 10 + (i % 3) === id).map((i) => `m${i}`);
        assert.deepEqual(list, want, `vconn ${id}, pieces of ${piece}`);
      }
      assert.equal((await third!.closed).by, "gateway");
      client.close();
    }
  });

  test("a dial that times out is abandoned; its late Accept is closed at once", async () => {
    const gw = new ScriptedGateway();
    const client = await Client.connect(gw.connector, { pingInterval: 0, dialTimeout: 50 });
    const late = client.dial(7);
    await assert.rejects(late, (e: unknown) => e instanceof DialTimeoutError && e.remoteId === 7);
    const next = client.dial(7);
    gw.deliver(concat(accept(40, 7), accept(41, 7)));
    assert.equal((await next).connId, 41, "the second Accept answers the second dial");
    const sentClose = gw.sent.find((f) => f.kind === "command" && f.command.type === 4);
    assert.deepEqual(sentClose, { kind: "command", command: { type: 4, connId: 40 } });
    client.close();
  });

  test("a Ping that never comes back closes the link, unless the callback keeps it", async () => {
    const gw = new ScriptedGateway();
    const client = await Client.connect(gw.connector, { pingInterval: 20, pingTimeout: 40 });
    const closed = new Promise<UniwayError | undefined>((resolve) => client.on("close", resolve));
    const err = await closed;
    assert.ok(err instanceof PingTimeoutError, String(err));
    assert.ok(gw.closed);
    assert.ok(gw.sent.some((f) => f.kind === "command" && f.command.type === 5), "pings were sent");

    const gw2 = new ScriptedGateway();
    let asked = 0;
    const kept = await Client.connect(gw2.connector, {
      pingInterval: 20,
      pingTimeout: 30,
      onPingTimeout: () => ++asked < 3,
    });
    const end = await new Promise<UniwayError | undefined>((resolve) => kept.on("close", resolve));
    assert.equal(asked, 3);
    assert.ok(end instanceof PingTimeoutError);

    // Answered Pings keep it up.
    const gw3 = new ScriptedGateway();
    const fine = await Client.connect(gw3.connector, { pingInterval: 20, pingTimeout: 30 });
    const answer = setInterval(() => gw3.deliver(encodePing()), 10);
    await new Promise((r) => setTimeout(r, 200));
    clearInterval(answer);
    assert.ok(fine.connected);
    fine.close();
  });

  test("bad input from the gateway ends the link with a ProtocolError and ends every vconn", async () => {
    for (const bad of [bytes("02 00 00 00"), accept(5, 3), cmd(4, 1, 2)]) {
      const gw = new ScriptedGateway();
      const client = await Client.connect(gw.connector, { pingInterval: 0 });
      const d = client.dial(1);
      gw.deliver(accept(9, 1));
      const vc = await d;
      const closed = new Promise<UniwayError | undefined>((resolve) => client.on("close", resolve));
      gw.deliver(bad);
      assert.ok((await closed) instanceof ProtocolError);
      assert.equal((await vc.closed).by, "link");
      assert.ok(gw.closed);
    }
  });
});
