import { closest } from './action-mapping.ts';
import { BUILTIN_JAIL_CONF_PATH } from './builtin-jail-conf.ts';
import type { ConfigStore } from './config-store.ts';
import { DEFAULT_SECTION } from './ini-parser.ts';
import { JAIL_OPTIONS, type JailNote } from './jail-definition.ts';
import { textOf, type SourcedText } from './sourced-text.ts';

/**
 * Keys of a jail section (or [DEFAULT]) that nothing reads: fail2ban ignores them silently, so
 * `enabeld = true` leaves a jail off and `maxretyr = 3` keeps the default. edgeban warns, naming
 * the closest known key.
 */

// Keys edgeban's jails read beside fail2ban's, and jail.conf's usual helpers.
const EDGEBAN_JAIL_KEYS = ['logformat', 'ipv6prefix', 'banprivate', 'maxtracked', 'localactions', 'mode'];
const COMMON_JAIL_KEYS = [
  'port',
  'protocol',
  'chain',
  'banaction',
  'banaction_allports',
  'destemail',
  'sender',
  'mta',
  'fail2ban_agent',
  'action_',
  'action_mw',
  'action_mwl',
  'action_xarf',
  'action_cf_mwl',
  'action_blocklist_de',
  'action_abuseipdb',
  'action_badips',
  'action_badips_report',
  'blocktype',
  'returntype',
  'lockingopt',
  'name',
  'before',
  'after',
  'allowipv6',
  'cfemail',
  'cfapikey',
  'blocklist_de_apikey',
  'abuseipdb_apikey',
  'abuseipdb_category',
  'knocking_url',
  'logtype',
  'fail2ban_version',
  'fail2ban_confpath',
  '__name__',
];

export interface KnownElsewhere {
  /** Option names some value refers to with %(name)s (referencedNames): defined for a reason. */
  referenced: ReadonlySet<string>;
  /** Parameters the jail's actions take (their [Init] keys): a jail may set them. */
  actionParams: readonly string[];
}

export function unknownKeys(store: ConfigStore, section: string, elsewhere: KnownElsewhere): JailNote[] {
  const own = section === DEFAULT_SECTION ? store.defaults : store.sections.get(section);
  if (!own) return [];
  const known = new Set([...JAIL_OPTIONS, ...EDGEBAN_JAIL_KEYS, ...COMMON_JAIL_KEYS]);
  const notes: JailNote[] = [];
  for (const [key, raw] of own) {
    // Built-in defaults, conditional (`key?cond`) and `known/` keys are fine.
    if (raw.file === BUILTIN_JAIL_CONF_PATH || key.includes('?') || key.includes('/')) continue;
    if (known.has(key) || elsewhere.referenced.has(key) || elsewhere.actionParams.includes(key)) continue;
    const suggestion = closest(key, known);
    notes.push({
      kind: 'unknown-key',
      subject: key,
      file: raw.file,
      line: raw.line,
      message: `${raw.file}:${raw.line}: [${section}] ${key}: unknown key, ignored (as fail2ban ignores it)${suggestion === null ? '' : `; did you mean ${suggestion}?`}`,
      fix: suggestion === null ? `remove ${key}` : `rename ${key} to ${suggestion}, or remove it`,
    });
  }
  return notes;
}

/** Every option name a value of the store refers to with %(name)s. */
export function referencedNames(store: ConfigStore): Set<string> {
  const names = new Set<string>();
  const scan = (section: ReadonlyMap<string, { text: SourcedText }>) => {
    for (const raw of section.values()) for (const match of textOf(raw.text).matchAll(/%\(([^)]+)\)s/g)) names.add((match[1] ?? '').toLowerCase());
  };
  scan(store.defaults);
  for (const section of store.sections.values()) scan(section);
  return names;
}
