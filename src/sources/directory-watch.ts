import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logging/logger.ts';
import { errorMessage } from '../util/errors.ts';
import type { FollowedFiles } from './followed-files.ts';
import { expandPatterns, globRoot, isGlob } from './patterns.ts';

/** How the watch asks the follower to look. */
export interface WatchWakeups {
  /** Something changed: look at the tracks marked dirty now, expanding the patterns again first when `rescan`. */
  wake: (rescan: boolean) => void;
  /** A watch was (re)armed and marked its directory's tracks dirty: the pass under way goes round once more. */
  goAgain: () => void;
}

export interface DirectoryWatchOptions {
  /** Absolute paths or globs. */
  patterns: string[];
  /** No fs.watch at all: the follower's supervisor polls every file each interval. */
  forcePolling: boolean;
  logger: Logger;
  files: FollowedFiles;
  wakeups: WatchWakeups;
}

interface DirWatch {
  watcher: FSWatcher;
  ino: number;
  birthtimeMs: number;
  dead: boolean;
}

/**
 * Which paths are followed (the patterns expanded again) and fs.watch on their directories. A
 * watch only says "look now": missed events cost latency, never lines, because the follower's
 * supervisor looks at every file each poll interval anyway (the only way on NFS or without inotify).
 */
export class DirectoryWatch {
  private readonly patterns: string[];
  private readonly forcePolling: boolean;
  private readonly logger: Logger;
  private readonly files: FollowedFiles;
  private readonly wakeups: WatchWakeups;
  private readonly watchers = new Map<string, DirWatch>();
  private closed = false;

  constructor(options: DirectoryWatchOptions) {
    this.patterns = options.patterns;
    this.forcePolling = options.forcePolling;
    this.logger = options.logger;
    this.files = options.files;
    this.wakeups = options.wakeups;
  }

  /** Follows paths that now match; forgets those that no longer do once nothing is left to read there. */
  async rescan(): Promise<void> {
    const tracks = this.files.tracks;
    const paths = await expandPatterns(this.patterns);
    const wanted = new Set(paths);
    for (const p of paths) if (!tracks.has(p)) this.files.add(p);
    for (const t of [...tracks.values()]) {
      if (!wanted.has(t.path) && !t.current && t.draining.length === 0 && !t.pendingCurrent) tracks.delete(t.path);
    }
    await this.sync();
  }

  /** Watches the directories of the followed paths and the roots of the globs; re-arms dead watches. */
  async sync(): Promise<void> {
    if (this.forcePolling || this.closed) return;
    const dirs = new Set([...this.files.tracks.values()].map((t) => t.dir));
    for (const p of this.patterns) if (isGlob(p)) dirs.add(globRoot(p));
    // The parents too: a log directory removed and recreated is seen (and re-watched) at once.
    for (const d of [...dirs]) dirs.add(path.dirname(d));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) await this.ensureWatch(dir);
  }

  /** Closes every watch; no wakeup comes after this. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.watcher.close();
    this.watchers.clear();
  }

  /** (Re)arms the watch of a directory; a removed and recreated directory needs a new one. */
  private async ensureWatch(dir: string): Promise<void> {
    const existing = this.watchers.get(dir);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) {
      if (existing) {
        existing.watcher.close();
        this.watchers.delete(dir);
      }
      return;
    }
    if (existing && !existing.dead && existing.ino === st.ino && existing.birthtimeMs === st.birthtimeMs) return;
    if (this.closed) return;
    try {
      const watcher = watch(dir, { persistent: false }, (event, name) => this.onDirEvent(dir, event, name));
      const entry: DirWatch = { watcher, ino: st.ino, birthtimeMs: st.birthtimeMs, dead: false };
      watcher.on('error', () => {
        entry.dead = true;
        this.wakeups.wake(true);
      });
      this.watchers.set(dir, entry);
      // Anything may have happened in the directory while it was not watched.
      for (const t of this.files.tracks.values()) if (t.dir === dir) t.dirty = true;
      this.wakeups.goAgain();
    } catch (error) {
      // No inotify here (or out of watches): the supervisor's polling still finds every line.
      this.logger.debug({ dir, err: errorMessage(error) }, 'cannot watch directory; polling it');
    }
    existing?.watcher.close();
  }

  private onDirEvent(dir: string, event: string, name: string | null): void {
    if (this.closed) return;
    let rescan = false;
    const entry = this.watchers.get(dir);
    // inotify reports the watched directory's own removal under its name; the watch is dead then.
    if (event === 'rename' && name === path.basename(dir) && entry) {
      entry.dead = true;
      rescan = true;
    }
    for (const t of this.files.tracks.values()) {
      if (t.dir === dir && (name === null || name === t.base || event === 'rename' || t.draining.length > 0)) t.dirty = true;
    }
    if (event === 'rename') rescan = true;
    this.wakeups.wake(rescan);
  }
}
