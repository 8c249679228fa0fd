/**
 * Real peers for the tests: a `fastway` gateway and the repository's
 * `script_server` (examples/script_server.rs), started on 127.0.0.1 with
 * port 0 and found from their logs, each in a temporary folder, stopped by
 * the tests. The binaries come from `UNIWAY_BIN_DIR`, by default the
 * repository's `target/debug` (`cargo build --bin fastway --example
 * script_server --example testcert` makes them).
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import WebSocket from "ws";

import type { WebSocketClass } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs from clients/js/dist/test). */
export const repoRoot = path.resolve(here, "../../../..");
const binDir = process.env.UNIWAY_BIN_DIR ?? path.join(repoRoot, "target", "debug");

export const fastwayBin = path.join(binDir, "fastway");
export const exampleBin = (name: string) => path.join(binDir, "examples", name);

/** The key every test gateway and server share. */
export const KEY = "js-client-tests";

/** A process whose output is collected, to wait for lines in. */
export class Proc {
  output = "";
  exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on("data", (b: Buffer) => (this.output += b.toString()));
    child.stderr?.on("data", (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  /** The first match of `re` in the output, within `ms`. */
  async waitFor(re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (this.child.exitCode !== null) {
        throw new Error(`process exited (${this.child.exitCode}) before ${re}:\n${this.output}`);
      }
      if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms:\n${this.output}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
    }
    await this.exited;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Folders and certificates made once per test process. */
let certDir: string | undefined;
export function testCerts(): { dir: string; ca: Buffer } {
  if (!certDir) {
    certDir = mkdtempSync(path.join(tmpdir(), "uniway-js-certs-"));
    const r = spawnSync(exampleBin("testcert"), [certDir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`testcert failed: ${r.stderr}`);
    process.once("exit", () => rmSync(certDir as string, { recursive: true, force: true }));
  }
  return { dir: certDir, ca: readFileSync(path.join(certDir, "ca.pem")) };
}

/** The fronts a client can use. */
export type Front = "tcp" | "ws" | "wss";

/** A running gateway. */
export class Gateway {
  private constructor(
    readonly proc: Proc,
    readonly dir: string,
    readonly clientPort: number,
    readonly serverPort: number,
    readonly wsPort: number,
    readonly front: Front,
  ) {}

  /** Starts fastway with a client front and `flags` on top of the test
   * defaults. */
  static async start(front: Front, flags: string[] = []): Promise<Gateway> {
    const dir = mkdtempSync(path.join(tmpdir(), "uniway-js-gw-"));
    const args = [
      "-ClientAddr=127.0.0.1:0",
      "-ServerAddr=127.0.0.1:0",
      `-ServerAuthKey=${KEY}`,
      "-ClientWsAddr=127.0.0.1:0",
      "-ClientWsPath=/play",
    ];
    if (front === "wss") {
      const { dir: certs } = testCerts();
      args.push(`-ClientWsTlsCert=${certs}/cert.pem`, `-ClientWsTlsKey=${certs}/key.pem`);
    }
    args.push(...flags);
    const proc = new Proc(
      spawn(fastwayBin, args, { cwd: dir, env: { ...process.env, RUST_LOG: "info" }, stdio: ["ignore", "pipe", "pipe"] }),
    );
    const port = async (re: RegExp) => Number((await proc.waitFor(re))[1]);
    const clientPort = await port(/client listener at 127\.0\.0\.1:(\d+)\s*$/m);
    const serverPort = await port(/server listener at 127\.0\.0\.1:(\d+)/);
    const wsPort = await port(/client listener at 127\.0\.0\.1:(\d+) \(WebSocket/);
    return new Gateway(proc, dir, clientPort, serverPort, wsPort, front);
  }

  /** The WebSocket URL of the client front. */
  get url(): string {
    return `${this.front === "wss" ? "wss" : "ws"}://127.0.0.1:${this.wsPort}/play`;
  }

  /** Starts a script_server registered as `serverId`. */
  async startServer(serverId = 1): Promise<Proc> {
    const proc = new Proc(
      spawn(exampleBin("script_server"), [`127.0.0.1:${this.serverPort}`, String(serverId), KEY], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    await proc.waitFor(/registered/);
    return proc;
  }

  async stop(): Promise<void> {
    await this.proc.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The `ws` package's class, trusting the test CA (for WSS). */
export function testWebSocket(): WebSocketClass {
  const { ca } = testCerts();
  class TestWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { ca });
    }
  }
  return TestWebSocket as unknown as WebSocketClass;
}
