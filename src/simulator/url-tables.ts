import { createHash } from 'node:crypto';
import type { ConfiguredAlias } from './alias-config.ts';
import type { PfTableStore } from './pf-table-store.ts';

/** What OPNsense keeps per URL-table alias under /var/db/aliastables (on disk: it survives a reboot). */
interface CachedTable {
  /** `<name>.txt` / `<name>.self.txt`: the addresses last resolved. */
  entries: string[];
  /** `<name>.md5.txt`: the alias definition's hash (`uniqueid`), whose mtime dates the last fetch. */
  uniqueid: string;
  stampedAt: number;
}

export interface UrlTableUpdate {
  /** `--quick` (the per-minute cron): an alias neither changed nor expired whose table holds entries is skipped. */
  quick: boolean;
  /** Treat every URL table as past its refresh time (a test's stand-in for waiting `updatefreq` days). */
  expireAll?: boolean;
}

/** Alias.uniqueid(): the URL items and the fetch settings; a change forces a fetch. */
function uniqueid(alias: ConfiguredAlias): string {
  const fields = [alias.authtype ?? '', alias.username ?? '', alias.password ?? ''].map((f) => `[${f}]`).join('');
  return createHash('md5')
    .update(`${[...alias.content].sort().join(',')}${fields}`)
    .digest('hex');
}

/** UriParser._parse_line: the first token before whitespace , ; | #, not a `//` comment. */
function parseLines(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const raw = line.split(/[\s,;|#]+/)[0] ?? '';
    if (raw !== '' && !raw.startsWith('//')) out.push(raw);
  }
  return out;
}

/**
 * URL Table (IPs) aliases as OPNsense refreshes them: S/update_tables.py with S/lib/alias/__init__.py
 * and uri.py (see deploy/opnsense-durable.md). A fetch happens when the alias changed or its TTL
 * (`updatefreq` days) passed; a failed fetch keeps the cached list and still restarts the TTL; the
 * table is then replaced wholesale (`pfctl -T replace -f`), so entries added meanwhile with
 * `pfctl -T add` (alias_util) are dropped unless the list holds them. At boot the cache reloads
 * the table without any fetch while the TTL has not passed.
 */
export class UrlTables {
  private readonly pf: PfTableStore;
  private readonly now: () => number;
  private readonly cache = new Map<string, CachedTable>();
  /** flock -n on /tmp/filter_update_tables.lock: a run while one runs does nothing. */
  private running: Promise<void> | null = null;

  constructor(pf: PfTableStore, now: () => number) {
    this.pf = pf;
    this.now = now;
  }

  update(aliases: readonly ConfiguredAlias[], options: UrlTableUpdate): Promise<void> {
    if (this.running) return this.running;
    this.running = this.run(aliases, options).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Boot: pf starts empty and the first refresh loads each URL table from its cache (fetching only expired or uncached ones, afterwards). */
  loadCached(aliases: readonly ConfiguredAlias[]): void {
    for (const alias of urlTables(aliases)) {
      const cached = this.cache.get(alias.name);
      if (cached && cached.entries.length > 0) this.pf.replace(alias.name, cached.entries);
    }
  }

  /** Whether a boot refresh must fetch some table (expired or never fetched). */
  needsFetch(aliases: readonly ConfiguredAlias[]): boolean {
    return urlTables(aliases).some((a) => this.changed(a) || this.expired(a));
  }

  private changed(alias: ConfiguredAlias): boolean {
    return this.cache.get(alias.name)?.uniqueid !== uniqueid(alias);
  }

  private expired(alias: ConfiguredAlias): boolean {
    const days = Number.parseFloat(alias.updatefreq ?? '');
    const cached = this.cache.get(alias.name);
    if (!(days > 0) || !cached) return false;
    return this.now() - cached.stampedAt > days * 86_400_000;
  }

  private async run(aliases: readonly ConfiguredAlias[], options: UrlTableUpdate): Promise<void> {
    for (const alias of urlTables(aliases)) {
      const cached = this.cache.get(alias.name);
      const changedOrExpired = this.changed(alias) || this.expired(alias) || options.expireAll === true;
      const inPf = this.pf.get(alias.name)?.size ?? 0;
      // update_tables.py: quick mode skips an unchanged, unexpired alias whose table is loaded (or whose list is empty).
      if (options.quick && !changedOrExpired && (inPf !== 0 || (cached?.entries.length ?? 0) === 0)) continue;
      let entries = cached?.entries ?? [];
      if (changedOrExpired) {
        try {
          entries = this.pf.spellAll(await fetchUrlTable(alias));
        } catch {
          // Alias.resolve(): the error is logged and the previous content kept.
        }
        // The md5 file is written or touched either way: the TTL restarts even after a failed fetch.
        this.cache.set(alias.name, { entries, uniqueid: uniqueid(alias), stampedAt: this.now() });
      }
      if (entries.length !== inPf || changedOrExpired) {
        if (entries.length === 0) this.pf.flush(alias.name);
        else this.pf.replace(alias.name, entries);
      }
    }
  }
}

function urlTables(aliases: readonly ConfiguredAlias[]): ConfiguredAlias[] {
  return aliases.filter((a) => a.enabled && a.type === 'urltable');
}

/** UriParser.iter_addresses: GET each URL (User-Agent OPNsense, the alias's auth), only a 200 counts. */
async function fetchUrlTable(alias: ConfiguredAlias): Promise<string[]> {
  const out: string[] = [];
  for (const item of alias.content) {
    const url = new URL(item);
    const headers: Record<string, string> = { 'user-agent': 'OPNsense' };
    // requests takes user:password@ from the URL as basic auth when no other auth is set.
    if (url.username !== '' || url.password !== '') {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    const { authtype, username, password } = alias;
    if (authtype && password) {
      if (authtype === 'Basic' && username) headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
      else if (authtype === 'Bearer') headers.authorization = `Bearer ${password}`;
      else if (authtype === 'Header' && username) headers[username.toLowerCase()] = password;
    }
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(120_000) });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`error fetching alias url [http_code:${response.status}]`);
    }
    out.push(...parseLines(await response.text()));
  }
  return out;
}
