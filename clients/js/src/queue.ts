/**
 * A small event emitter, and an async queue with an end: what the client
 * and its vconns hand to the application, as events or as `await`.
 *
 * @module
 */

/** Listener functions by event name. */
export type Listeners = Record<string, (...args: never[]) => void>;

/** A typed event emitter that works the same in browsers and Node. */
export class Emitter<E extends Listeners> {
  private readonly listeners = new Map<keyof E, Set<E[keyof E]>>();

  /** Calls `fn` on every `event`. */
  on<K extends keyof E>(event: K, fn: E[K]): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(fn);
    this.listened(event);
    return this;
  }

  /** Called after a listener is added to `event`. */
  protected listened(_event: keyof E): void {}

  /** Stops calling `fn` on `event`. */
  off<K extends keyof E>(event: K, fn: E[K]): this {
    this.listeners.get(event)?.delete(fn);
    return this;
  }

  /** Whether anything listens to `event`. */
  protected listening(event: keyof E): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  /** Calls every listener of `event`; a listener that throws is reported
   * on the console and does not stop the others. */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (...a: Parameters<E[K]>) => void)(...args);
      } catch (e) {
        console.error(`uniway: a '${String(event)}' listener threw`, e);
      }
    }
  }
}

/** Values waiting for someone to take them, until the queue ends. */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (v: T) => void; reject: (e: unknown) => void }[] = [];
  private error: Error | undefined;

  /** Values waiting. */
  get size(): number {
    return this.items.length;
  }

  /** Whether the queue has ended. */
  get ended(): boolean {
    return this.error !== undefined;
  }

  /** Adds a value (ignored once the queue has ended). */
  push(value: T): void {
    if (this.error) return;
    const w = this.waiters.shift();
    if (w) w.resolve(value);
    else this.items.push(value);
  }

  /** The next value; once the queue has ended and is empty, rejects with
   * the error it ended with. */
  take(): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift() as T);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Takes every value waiting, at once. */
  drain(): T[] {
    return this.items.splice(0);
  }

  /** Ends the queue: values still waiting can be taken, then every take
   * rejects with `error`. */
  end(error: Error): void {
    if (this.error) return;
    this.error = error;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  /** Iterates until the queue ends (the end is not an error for a loop). */
  async *iterate(): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.items.length === 0 && this.error) return;
      let v: T;
      try {
        v = await this.take();
      } catch {
        return;
      }
      yield v;
    }
  }
}
