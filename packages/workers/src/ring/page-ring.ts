// The page rings: one SharedArrayBuffer holding a submission ring of entries
// (op, first page, count, arena page, tag, status), one completion ring per
// consumer ("owner"), a sleepers count and per-owner counters. Only the
// submitting thread produces entries; any thread claims one by a CAS on the
// entry's state word (the claim and the ownership are one atomic step, so a
// thread that dies leaves entries that say whose they were); a consumer
// publishes what it finished on its own single-producer completion ring, so no
// completion can be half-published. Idle consumers sleep on Atomics.wait and a
// producer calls notify only when the sleepers count says someone sleeps.

/** Entry ops. */
export const OP_WRITE = 1;
export const OP_READ = 2;

/** Entry states: free (the submitter may fill it), submitted, or claimed by owner o (CLAIMED + o). */
export const ST_FREE = 0;
export const ST_SUBMITTED = 1;
export const ST_CLAIMED = 16;

// entry words
const E_STATE = 0;
const E_OP = 1;
const E_FIRST = 2;
const E_COUNT = 3;
const E_ARENA = 4;
const E_TAG = 5;
/** 0: every page done; else 1 + the byte length of the error text in the entry's message area. */
const E_STATUS = 6;
/** The first page (within the entry) that failed. */
const E_ERRPAGE = 7;
const ENTRY_WORDS = 8;

// control words
const C_HEAD = 0; // next sequence to claim (a hint: the state CAS decides)
const C_TAIL = 1; // next sequence to submit (submitter only)
const C_SEQ = 2; // bumped per submission; sleepers wait on it
const C_SLEEPERS = 3;
const C_STOP = 4;
const C_WAITING = 5; // the submitter waits for completions (Atomics.waitAsync on C_CQSEQ)
const C_CQSEQ = 6; // bumped per completion
const C_SPINNERS = 7; // consumers awake and polling for work
const C_GONE = 8; // consumers that died and have no successor yet
const CTL_WORDS = 9;

// per-owner words: completion ring head/tail, thread id, then the ring itself
const O_CQHEAD = 0;
const O_CQTAIL = 1;
const O_THREAD = 2;
const O_FLAGS = 3; // what the owner is counted as now: spinning, sleeping
const O_WORDS = 4;
const OF_SPIN = 1;
const OF_SLEEP = 2;
const OF_GONE = 4;

// per-owner float counters
const F_PAGES = 0;
const F_ENTRIES = 1;
const F_BUSY_MS = 2;
const F_IDLE_MS = 3;
const F_WAKEUPS = 4;
const F_WORDS = 8;

/** Bytes of error text kept per entry. */
const MSG_BYTES = 240;

export interface PageRingShared {
  sab: SharedArrayBuffer;
  entries: number;
  owners: number;
}

export interface OwnerCounters {
  pages: number;
  entries: number;
  busyMs: number;
  idleMs: number;
  wakeups: number;
  threadId: number;
}

export class PageRing {
  readonly sab: SharedArrayBuffer;
  /** Ring size (a power of two). */
  readonly entries: number;
  /** Consumers with a completion ring: owner 0 is the submitting thread, 1.. the workers. */
  readonly owners: number;
  private readonly mask: number;
  private readonly ctl: Int32Array;
  private readonly ent: Int32Array;
  private readonly own: Int32Array;
  private readonly cq: Int32Array;
  private readonly f64: Float64Array;
  private readonly msg: Uint8Array;

  private constructor(shared: PageRingShared) {
    const { sab, entries, owners } = shared;
    this.sab = sab;
    this.entries = entries;
    this.owners = owners;
    this.mask = entries - 1;
    let at = 0;
    const i32 = (words: number) => {
      const v = new Int32Array(sab, at, words);
      at += words * 4;
      return v;
    };
    this.ctl = i32(CTL_WORDS);
    this.ent = i32(entries * ENTRY_WORDS);
    this.own = i32(owners * O_WORDS);
    this.cq = i32(owners * entries);
    at = Math.ceil(at / 8) * 8;
    this.f64 = new Float64Array(sab, at, owners * F_WORDS);
    at += owners * F_WORDS * 8;
    this.msg = new Uint8Array(sab, at, entries * MSG_BYTES);
  }

  static create(entries: number, owners: number): PageRing {
    if (!Number.isInteger(entries) || entries < 2 || (entries & (entries - 1)) !== 0)
      throw new RangeError(`ring entries must be a power of two >= 2, got ${entries}`);
    if (!Number.isInteger(owners) || owners < 1 || owners > 256) throw new RangeError('owners must be 1..256');
    const ints = CTL_WORDS + entries * ENTRY_WORDS + owners * O_WORDS + owners * entries;
    const bytes = Math.ceil((ints * 4) / 8) * 8 + owners * F_WORDS * 8 + entries * MSG_BYTES;
    return new PageRing({ sab: new SharedArrayBuffer(bytes), entries, owners });
  }

  static attach(shared: PageRingShared): PageRing {
    return new PageRing(shared);
  }

  get shared(): PageRingShared {
    return { sab: this.sab, entries: this.entries, owners: this.owners };
  }

  // ---------------------------------------------------------------- submission (submitting thread only)

  /** The entry the next submission goes to, or -1 while it is still in use (the ring is full). */
  nextFree(): number {
    const slot = this.ctl[C_TAIL]! & this.mask;
    return Atomics.load(this.ent, slot * ENTRY_WORDS + E_STATE) === ST_FREE ? slot : -1;
  }

  /** Publishes an entry at the tail (nextFree() must have returned `slot`); wake() then rouses sleepers. */
  submit(slot: number, op: number, first: number, count: number, arenaPage: number, tag: number): void {
    const e = this.ent;
    const b = slot * ENTRY_WORDS;
    e[b + E_OP] = op;
    e[b + E_FIRST] = first;
    e[b + E_COUNT] = count;
    e[b + E_ARENA] = arenaPage;
    e[b + E_TAG] = tag;
    e[b + E_STATUS] = 0;
    e[b + E_ERRPAGE] = 0;
    Atomics.store(e, b + E_STATE, ST_SUBMITTED);
    Atomics.store(this.ctl, C_TAIL, (this.ctl[C_TAIL]! + 1) | 0);
    Atomics.add(this.ctl, C_SEQ, 1);
  }

  /**
   * Wakes sleeping consumers for `n` new entries, but only as many as the
   * entries waiting outnumber the consumers awake (polling, or busy with an
   * entry: each looks for more before it sleeps): no system call when none
   * sleeps or the awake ones will take the work anyway. Returns how many it woke.
   */
  wake(n: number): number {
    const sleepers = Atomics.load(this.ctl, C_SLEEPERS);
    if (sleepers === 0) return 0;
    const awake = this.owners - 1 - sleepers - Atomics.load(this.ctl, C_GONE);
    const more = Math.min(n, this.unclaimed() - awake, sleepers);
    return more > 0 ? Atomics.notify(this.ctl, C_SEQ, more) : 0;
  }

  /** Consumer `owner` polls for work (counted so producers need not wake anyone for it). */
  spinning(owner: number, on: boolean): void {
    Atomics.store(this.own, owner * O_WORDS + O_FLAGS, on ? OF_SPIN : 0);
    Atomics.add(this.ctl, C_SPINNERS, on ? 1 : -1);
  }

  /**
   * A consumer died: take it out of the spinners and sleepers counts it was in,
   * or producers would go on counting on a poller that is gone.
   */
  forgetOwner(owner: number): void {
    const f = Atomics.exchange(this.own, owner * O_WORDS + O_FLAGS, OF_GONE);
    if (f & OF_GONE) return;
    if (f & OF_SPIN) Atomics.sub(this.ctl, C_SPINNERS, 1);
    if (f & OF_SLEEP) Atomics.sub(this.ctl, C_SLEEPERS, 1);
    // no longer counted awake: producers wake the sleepers for what it would have taken
    Atomics.add(this.ctl, C_GONE, 1);
  }

  /** Entries submitted and not yet claimed (approximate while consumers run). */
  unclaimed(): number {
    return (Atomics.load(this.ctl, C_TAIL) - Atomics.load(this.ctl, C_HEAD)) | 0;
  }

  sleepers(): number {
    return Atomics.load(this.ctl, C_SLEEPERS);
  }

  /** Back to free once the submitter has settled it. */
  release(slot: number): void {
    Atomics.store(this.ent, slot * ENTRY_WORDS + E_STATE, ST_FREE);
  }

  stateOf(slot: number): number {
    return Atomics.load(this.ent, slot * ENTRY_WORDS + E_STATE);
  }

  // ---------------------------------------------------------------- claiming (any thread)

  /** Claims the oldest submitted entry for `owner`; returns its slot or -1 when none is waiting. */
  claim(owner: number): number {
    const ctl = this.ctl;
    const e = this.ent;
    for (;;) {
      const h = Atomics.load(ctl, C_HEAD);
      if (h === Atomics.load(ctl, C_TAIL)) return -1;
      const slot = h & this.mask;
      const won =
        Atomics.compareExchange(e, slot * ENTRY_WORDS + E_STATE, ST_SUBMITTED, ST_CLAIMED + owner) === ST_SUBMITTED;
      // advance the head past h whoever claimed it (helping a slower claimer along)
      Atomics.compareExchange(ctl, C_HEAD, h, (h + 1) | 0);
      if (won) return slot;
    }
  }

  op(slot: number): number {
    return this.ent[slot * ENTRY_WORDS + E_OP]!;
  }
  first(slot: number): number {
    return this.ent[slot * ENTRY_WORDS + E_FIRST]!;
  }
  count(slot: number): number {
    return this.ent[slot * ENTRY_WORDS + E_COUNT]!;
  }
  arenaPage(slot: number): number {
    return this.ent[slot * ENTRY_WORDS + E_ARENA]!;
  }
  tag(slot: number): number {
    return this.ent[slot * ENTRY_WORDS + E_TAG]!;
  }

  /** Records the entry's first failure (later ones on the same entry are dropped). */
  fail(slot: number, page: number, code: string, message: string): void {
    const b = slot * ENTRY_WORDS;
    if (this.ent[b + E_STATUS] !== 0) return;
    const text = `${code}\n${message}`;
    const area = this.msg.subarray(slot * MSG_BYTES, (slot + 1) * MSG_BYTES);
    const n = Math.min(text.length, MSG_BYTES);
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      area[i] = c < 128 ? c : 63; // '?' for anything outside ASCII
    }
    this.ent[b + E_ERRPAGE] = page;
    this.ent[b + E_STATUS] = n + 1;
  }

  /** The entry's failure, or null when every page succeeded. */
  failure(slot: number): { page: number; code: string; message: string } | null {
    const b = slot * ENTRY_WORDS;
    const st = this.ent[b + E_STATUS]!;
    if (st === 0) return null;
    const text = String.fromCharCode(...this.msg.subarray(slot * MSG_BYTES, slot * MSG_BYTES + st - 1));
    const nl = text.indexOf('\n');
    return { page: this.ent[b + E_ERRPAGE]!, code: text.slice(0, nl), message: text.slice(nl + 1) };
  }

  // ---------------------------------------------------------------- completion

  /** A consumer publishes a finished entry on its own completion ring, waking the submitter if it waits. */
  complete(owner: number, slot: number): void {
    const o = owner * O_WORDS;
    const t = this.own[o + O_CQTAIL]!;
    this.cq[owner * this.entries + (t & this.mask)] = slot;
    Atomics.store(this.own, o + O_CQTAIL, (t + 1) | 0);
    Atomics.add(this.ctl, C_CQSEQ, 1);
    if (Atomics.load(this.ctl, C_WAITING) !== 0) {
      Atomics.store(this.ctl, C_WAITING, 0);
      Atomics.notify(this.ctl, C_CQSEQ);
    }
  }

  /** The submitter takes the next completion of `owner`, or -1. */
  reap(owner: number): number {
    const o = owner * O_WORDS;
    const h = this.own[o + O_CQHEAD]!;
    if (h === Atomics.load(this.own, o + O_CQTAIL)) return -1;
    const slot = this.cq[owner * this.entries + (h & this.mask)]!;
    Atomics.store(this.own, o + O_CQHEAD, (h + 1) | 0);
    return slot;
  }

  /** Completions so far; read before waitCompletion(). */
  completionSeq(): number {
    return Atomics.load(this.ctl, C_CQSEQ);
  }

  /**
   * Arms the submitter's wait: returns a promise that settles when a completion
   * arrives after `seen` (or at once if one already has). No consumer notifies
   * unless this was called.
   */
  waitCompletion(seen: number): Promise<unknown> | null {
    Atomics.store(this.ctl, C_WAITING, 1);
    const r = Atomics.waitAsync(this.ctl, C_CQSEQ, seen);
    return r.async ? r.value : null;
  }

  // ---------------------------------------------------------------- sleeping (consumers)

  /** Submission sequence, read before deciding to sleep. */
  submitSeq(): number {
    return Atomics.load(this.ctl, C_SEQ);
  }

  /**
   * Sleeps until a submission after `seen` (or `timeoutMs`), counted in the
   * sleepers so producers know to notify. Re-checks for work after counting
   * itself, so a submission in between is never slept through.
   */
  sleep(owner: number, seen: number, timeoutMs: number): void {
    Atomics.store(this.own, owner * O_WORDS + O_FLAGS, OF_SLEEP);
    Atomics.add(this.ctl, C_SLEEPERS, 1);
    if (this.unclaimed() <= 0 && !this.stopping()) Atomics.wait(this.ctl, C_SEQ, seen, timeoutMs);
    Atomics.sub(this.ctl, C_SLEEPERS, 1);
    Atomics.store(this.own, owner * O_WORDS + O_FLAGS, 0);
  }

  stop(): void {
    Atomics.store(this.ctl, C_STOP, 1);
    Atomics.add(this.ctl, C_SEQ, 1);
    Atomics.notify(this.ctl, C_SEQ);
  }

  stopping(): boolean {
    return Atomics.load(this.ctl, C_STOP) !== 0;
  }

  // ---------------------------------------------------------------- per-owner counters

  /** A consumer starts as `owner` (a successor of a dead one is counted awake again). */
  setThread(owner: number, threadId: number): void {
    Atomics.store(this.own, owner * O_WORDS + O_THREAD, threadId);
    if (Atomics.compareExchange(this.own, owner * O_WORDS + O_FLAGS, OF_GONE, 0) === OF_GONE)
      Atomics.sub(this.ctl, C_GONE, 1);
  }

  threadOf(owner: number): number {
    return Atomics.load(this.own, owner * O_WORDS + O_THREAD);
  }

  /** Counts one finished entry of `pages` pages and the time spent (only the owner writes its counters). */
  account(owner: number, pages: number, busyMs: number): void {
    const b = owner * F_WORDS;
    this.f64[b + F_PAGES]! += pages;
    this.f64[b + F_ENTRIES]! += 1;
    this.f64[b + F_BUSY_MS]! += busyMs;
  }

  accountIdle(owner: number, idleMs: number, woken: boolean): void {
    const b = owner * F_WORDS;
    this.f64[b + F_IDLE_MS]! += idleMs;
    if (woken) this.f64[b + F_WAKEUPS]! += 1;
  }

  counters(owner: number): OwnerCounters {
    const b = owner * F_WORDS;
    return {
      pages: this.f64[b + F_PAGES]!,
      entries: this.f64[b + F_ENTRIES]!,
      busyMs: this.f64[b + F_BUSY_MS]!,
      idleMs: this.f64[b + F_IDLE_MS]!,
      wakeups: this.f64[b + F_WAKEUPS]!,
      threadId: this.threadOf(owner),
    };
  }
}
