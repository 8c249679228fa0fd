/**
 * The client against a real fastway and a real Rust server, on every
 * front a client can use (TCP, WebSocket, WSS): sizes up to MaxPacket both
 * ways across the fronts' boundaries, many vconns, server dials,
 * refusals, closes both ways, keep-alive past the idle timeout, limits,
 * a server or the gateway going away, and the redial.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ClosedError, connect, LinkError, RefusedError, TooLargeError, UniwayError } from "../src/index.js";
import type { Client, ClientOptions, LinkLoss, VConn } from "../src/index.js";
import { connectTcp } from "../src/node.js";
import { Gateway, sleep, testWebSocket } from "./harness.js";
import type { Front } from "./harness.js";

const MAX_PACKET = 512 * 1024;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function open(gw: Gateway, options: ClientOptions = {}): Promise<Client> {
  if (gw.front === "tcp") return connectTcp("127.0.0.1", gw.clientPort, options);
  return connect(gw.url, { ...options, WebSocket: testWebSocket() });
}

/** A message of `size` bytes whose every byte depends on its position and `seed`. */
function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

/** Rejects if `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// Sizes of a message: empty, the WebSocket 7-bit/16-bit/64-bit length forms
// of the message holding the frame (8 + size bytes: 125/126, 65,535/65,536),
// rustls' 16 KiB records and 64 KiB buffer, the gateway's read buffer and
// pool chunk sizes around them, and the largest a frame allows.
const SIZES = [
  0, 1, 117, 118, 119, 1000, 16 * 1024 - 8, 16 * 1024, 65_535 - 8, 65_536 - 8, 65_536, 100_000,
  256 * 1024, MAX_PACKET - 4,
];

const FRONTS: Front[] = ["tcp", "ws", "wss"];

for (const front of FRONTS) {
  describe(`over ${front}`, () => {
    let gw: Gateway;
    before(async () => {
      gw = await Gateway.start(front, ["-ClientMaxConn=32"]);
      await gw.startServer(1);
    });
    after(async () => {
      await gw.stop();
    });

    test("every size up to MaxPacket comes back unchanged", async () => {
      const client = await open(gw);
      try {
        const vc = await client.dial(1);
        assert.equal(vc.remoteId, 1);
        assert.equal(vc.dialedBy, "client");
        for (const [i, size] of SIZES.entries()) {
          const msg = pattern(size, i);
          vc.send(msg);
          const back = await within(vc.recv(), 10_000, `echo of ${size} B`);
          assert.equal(back.length, size, `size ${size}`);
          assert.deepEqual(back, msg, `bytes of the ${size} B echo`);
        }
        // All at once, without waiting: the echoes come back in order.
        for (const [i, size] of SIZES.entries()) vc.send(pattern(size, i + 100));
        for (const [i, size] of SIZES.entries()) {
          const back = await within(vc.recv(), 10_000, `pipelined echo of ${size} B`);
          assert.deepEqual(back, pattern(size, i + 100), `pipelined ${size} B`);
        }
      } finally {
        client.close();
      }
    });

    test("a burst from the server, read slowly or at once, arrives whole and in order", async () => {
      const client = await open(gw);
      try {
        const vc = await client.dial(1);
        for (const size of [0, 118, 65_528, 70_000, MAX_PACKET - 4]) {
          const count = size > 100_000 ? 4 : 40;
          vc.send(`!burst ${count} ${size}`);
          for (let i = 0; i < count; i++) {
            if (i === 1) await sleep(100); // a reader that falls behind
            const m = await within(vc.recv(), 10_000, `burst message ${i} of ${size} B`);
            assert.equal(m.length, size);
            assert.ok(m.every((b) => b === i % 251), `message ${i} of ${size} B holds its own bytes`);
          }
          assert.equal(text(await vc.recv()), "burst done");
        }
      } finally {
        client.close();
      }
    });

    test("many vconns at once keep their own order", async () => {
      const client = await open(gw);
      try {
        const vconns = await Promise.all(Array.from({ length: 24 }, () => client.dial(1)));
        assert.equal(new Set(vconns.map((v) => v.connId)).size, 24, "distinct conn IDs");
        const rounds = 30;
        for (let r = 0; r < rounds; r++) {
          for (const [i, vc] of vconns.entries()) vc.send(`${i}:${r}`);
        }
        await Promise.all(
          vconns.map(async (vc, i) => {
            for (let r = 0; r < rounds; r++) {
              assert.equal(text(await within(vc.recv(), 10_000, "echo")), `${i}:${r}`);
            }
          }),
        );
        assert.equal(client.vconnCount, 24);
      } finally {
        client.close();
      }
    });

    test("a server dials the client: accept() and the vconn event", async () => {
      const client = await open(gw);
      try {
        const vc = await client.dial(1);
        vc.send("!dial");
        const dialed = await within(client.accept(), 10_000, "accept");
        assert.equal(dialed.remoteId, 1);
        assert.equal(dialed.dialedBy, "server");
        assert.equal(text(await vc.recv()), `dialed ${dialed.connId}`);
        assert.equal(text(await dialed.recv()), `hello ${dialed.connId}`);
        dialed.send("over the server's vconn");
        assert.equal(text(await dialed.recv()), "over the server's vconn");

        // With a listener on, new vconns go to it.
        const seen = new Promise<VConn>((resolve) => client.on("vconn", resolve));
        vc.send("!dial");
        const second = await within(seen, 10_000, "vconn event");
        assert.notEqual(second.connId, dialed.connId);
        const got: string[] = [];
        second.on("message", (m) => got.push(text(m)));
        second.send("via events");
        const deadline = Date.now() + 10_000;
        while (got.length < 2 && Date.now() < deadline) await sleep(10);
        assert.deepEqual(got, [`hello ${second.connId}`, "via events"]);
      } finally {
        client.close();
      }
    });

    test("a dial to no server is refused with the server's ID", async () => {
      const client = await open(gw);
      try {
        await assert.rejects(client.dial(99), (e: unknown) => {
          assert.ok(e instanceof RefusedError);
          assert.equal(e.code, "REFUSED");
          assert.equal(e.remoteId, 99);
          return true;
        });
        // Answers match dials in order, refused or not.
        const [a, b, c] = await Promise.allSettled([client.dial(1), client.dial(98), client.dial(1)]);
        assert.equal(a.status, "fulfilled");
        assert.equal(b.status, "rejected");
        assert.equal(c.status, "fulfilled");
        const vc = (a as PromiseFulfilledResult<VConn>).value;
        vc.send("still fine");
        assert.equal(text(await vc.recv()), "still fine");
      } finally {
        client.close();
      }
    });

    test("closes both ways", async () => {
      const client = await open(gw);
      try {
        const mine = await client.dial(1);
        mine.send("before close");
        mine.close();
        const why = await within(mine.closed, 10_000, "close acknowledged");
        assert.equal(why.by, "local");
        assert.throws(() => mine.send("after"), ClosedError);
        await assert.rejects(mine.recv(), ClosedError);

        const theirs = await client.dial(1);
        theirs.send("one");
        theirs.send("!close");
        assert.equal(text(await theirs.recv()), "one");
        const reason = await within(theirs.closed, 10_000, "server's close");
        assert.equal(reason.by, "gateway");
        await assert.rejects(theirs.recv(), (e: unknown) => e instanceof ClosedError && e.by === "gateway");
        assert.throws(() => theirs.send("x"), ClosedError);
        assert.equal(client.vconnCount, 0);

        // The link still carries new vconns.
        const again = await client.dial(1);
        again.send("again");
        assert.equal(text(await again.recv()), "again");
      } finally {
        client.close();
      }
    });

    test("a message over MaxPacket is refused before it is sent", async () => {
      const client = await open(gw);
      try {
        const vc = await client.dial(1);
        assert.throws(
          () => vc.send(new Uint8Array(MAX_PACKET - 3)),
          (e: unknown) => e instanceof TooLargeError && e.size === MAX_PACKET - 3 && e.maxPacket === MAX_PACKET,
        );
        vc.send("the link is intact");
        assert.equal(text(await vc.recv()), "the link is intact");
      } finally {
        client.close();
      }
    });

    test("a closed client ends its vconns and dials", async () => {
      const client = await open(gw);
      const vc = await client.dial(1);
      const closed = new Promise<UniwayError | undefined>((resolve) => client.on("close", resolve));
      client.close();
      assert.equal(await closed, undefined);
      assert.equal((await vc.closed).by, "local");
      await assert.rejects(client.dial(1), LinkError);
      await assert.rejects(client.accept(), LinkError);
    });
  });
}

describe("limits, keep-alive and loss", () => {
  test("ClientMaxConn: a dial past it is refused, a close makes room", async () => {
    const gw = await Gateway.start("ws", ["-ClientMaxConn=2"]);
    try {
      await gw.startServer(1);
      const client = await open(gw);
      const a = await client.dial(1);
      await client.dial(1);
      await assert.rejects(client.dial(1), RefusedError);
      a.close();
      await a.closed;
      const c = await client.dial(1);
      c.send("room again");
      assert.equal(text(await c.recv()), "room again");
      client.close();
    } finally {
      await gw.stop();
    }
  });

  for (const front of ["tcp", "ws"] as Front[]) {
    test(`keep-alive holds an idle ${front} link past ClientIdleTimeout; without it the gateway cuts`, async () => {
      const gw = await Gateway.start(front, ["-ClientIdleTimeout=1s"]);
      try {
        await gw.startServer(1);
        const kept = await open(gw, { pingInterval: 300, pingTimeout: 2000 });
        const bare = await open(gw, { pingInterval: 0 });
        const vc = await kept.dial(1);
        const bareVc = await bare.dial(1);
        const lost = new Promise<LinkLoss>((resolve) => bare.on("lost", resolve));
        await sleep(2500);
        vc.send("still here");
        assert.equal(text(await vc.recv()), "still here");
        const loss = await within(lost, 5000, "the idle client cut");
        assert.ok(loss.error instanceof LinkError);
        assert.deepEqual(loss.vconns, [bareVc]);
        assert.equal(loss.reconnecting, false);
        assert.equal((await bareVc.closed).by, "link");
        kept.close();
      } finally {
        await gw.stop();
      }
    });
  }

  test("a server that goes away closes its vconns; the gateway going away ends the link", async () => {
    const gw = await Gateway.start("ws");
    try {
      await gw.startServer(1);
      const server2 = await gw.startServer(2);
      const client = await open(gw);
      const one = await client.dial(1);
      const two = await client.dial(2);
      two.send("!exit");
      await server2.exited;
      assert.equal((await within(two.closed, 10_000, "server 2's vconn closed")).by, "gateway");
      one.send("server 1 is fine");
      assert.equal(text(await one.recv()), "server 1 is fine");
      await assert.rejects(client.dial(2), RefusedError);

      const closed = new Promise<UniwayError | undefined>((resolve) => client.on("close", resolve));
      await gw.proc.stop();
      const error = await within(closed, 10_000, "client closed");
      assert.ok(error instanceof LinkError, String(error));
      assert.equal((await one.closed).by, "link");
    } finally {
      await gw.stop();
    }
  });

  test("reconnect: a broken link is redialed and the lost vconns are named", async () => {
    const gw = await Gateway.start("tcp", ["-ClientIdleTimeout=1s"]);
    try {
      await gw.startServer(1);
      // No keep-alive: the gateway cuts the link as idle, and the client redials.
      const client = await open(gw, { pingInterval: 0, reconnect: { initialDelay: 50 } });
      const vc = await client.dial(1);
      const lost = new Promise<LinkLoss>((resolve) => client.on("lost", resolve));
      const back = new Promise<void>((resolve) => client.on("reconnect", resolve));
      const loss = await within(lost, 5000, "link lost");
      assert.equal(loss.reconnecting, true);
      assert.deepEqual(loss.vconns, [vc]);
      assert.equal((await vc.closed).by, "link");
      await within(back, 5000, "redialed");
      assert.ok(client.connected);
      const fresh = await client.dial(1);
      fresh.send("after the redial");
      assert.equal(text(await fresh.recv()), "after the redial");
      client.close();
      assert.ok(!client.connected);
    } finally {
      await gw.stop();
    }
  });

  test("a gateway that cannot be reached is a LinkError", async () => {
    const gw = await Gateway.start("tcp");
    const port = gw.clientPort;
    const wsPort = gw.wsPort;
    await gw.stop();
    await assert.rejects(connectTcp("127.0.0.1", port), LinkError);
    await assert.rejects(connect(`ws://127.0.0.1:${wsPort}/play`, { WebSocket: testWebSocket() }), LinkError);
  });
});
