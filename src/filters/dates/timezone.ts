/**
 * Time zone handling as fail2ban does it (strptime.py): fixed offsets only, zone abbreviations
 * from its table (no DST switching), and naive local time for stamps without a zone.
 */

// fail2ban's TZ_STR: offset in hours, then the abbreviations that mean it.
const TZ_TABLE = `
-12 Y
-11 X NUT SST
-10 W CKT HAST HST TAHT TKT
-9 V AKST GAMT GIT HADT HNY
-8 U AKDT CIST HAY HNP PST PT
-7 T HAP HNR MST PDT
-6 S CST EAST GALT HAR HNC MDT
-5 R CDT COT EASST ECT EST ET HAC HNE PET
-4 Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT
-3 P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT
-2 O BRST FNT PMDT UYST WGST
-1 N AZOT CVT EGT
0 Z EGST GMT UTC WET WT
1 A CET DFT WAT WEDT WEST
2 B CAT CEDT CEST EET SAST WAST
3 C EAT EEDT EEST IDT MSK
4 D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT
5 E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT
6 F ALMT BIOT BTT IOT KGT NOVT OMST YEKST
7 G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB
8 H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST
9 I AWDT IRKST JST KST PWT TLT WDT WIT YAKT
10 K AEST ChST PGT VLAT YAKST YAPT
11 L AEDT LHDT MAGT NCT PONT SBT VLAST VUT
12 M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT
13 FJST NZDT
11.5 NFT
10.5 ACDT LHST
9.5 ACST
6.5 CCT MMT
5.75 NPT
5.5 SLT
4.5 AFT IRDT
3.5 IRST
-2.5 HAT NDT
-3.5 HNT NST NT
-4.5 HLV VET
-9.5 MART MIT
`;

function buildAbbreviations(): ReadonlyMap<string, number> {
  const map = new Map<string, number>([['', 0]]);
  for (const line of TZ_TABLE.split('\n')) {
    const [hours, ...names] = line.trim().split(/\s+/);
    if (hours === undefined || hours === '') continue;
    const minutes = Math.trunc(Number(hours) * 60);
    for (const name of names) map.set(name, minutes);
  }
  return map;
}

const TZ_ABBR_OFFSETS = buildAbbreviations();
const FIXED_OFFSET_TZ_RE = /^([A-Z](?:[A-Z]{2,4})?)?([+-][01]\d(?::?\d{2})?)?$/;

export class TimeZoneError extends Error {
  constructor(zone: string) {
    super(`unknown or unsupported time zone ${JSON.stringify(zone)} (use UTC, UTC+hhmm, -hh:mm or an abbreviation such as CET)`);
    this.name = 'TimeZoneError';
  }
}

/** Offset east of UTC in minutes for `Z`, `UTC`, `CET`, `+0100`, `-04:30`, `UTC+02`…; throws TimeZoneError. */
export function zoneOffsetMinutes(zone: string): number {
  if (zone === 'Z' || zone === 'UTC' || zone === 'GMT') return 0;
  const m = FIXED_OFFSET_TZ_RE.exec(zone);
  if (!m) throw new TimeZoneError(zone);
  const base = TZ_ABBR_OFFSETS.get(m[1] ?? '');
  if (base === undefined) throw new TimeZoneError(zone);
  const tzo = m[2];
  if (tzo === undefined || tzo === '') return base;
  const sign = tzo[0] === '-' ? -1 : 1;
  if (tzo.length <= 3) return base + Number(tzo) * 60;
  const mm = tzo[3] === ':' ? tzo.slice(4, 6) : tzo.slice(3, 5);
  return base + sign * (Number(tzo.slice(1, 3)) * 60 + Number(mm));
}

/** Days from 1970-01-01 to the civil date (proleptic Gregorian); no Date object. */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Converts naive local wall-clock seconds (civil time written as if it were UTC) to epoch
 * seconds in the process's zone, like Python's time.mktime. The offset is cached per hour:
 * log lines arrive in order, so this rarely builds a Date.
 */
export class LocalTime {
  private cachedHour = Number.NaN;
  private cachedOffset = 0;

  toEpoch(naiveSeconds: number): number {
    const hour = Math.floor(naiveSeconds / 3600);
    if (hour !== this.cachedHour) {
      const base = hour * 3600;
      const d = new Date(base * 1000);
      const local = new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), 0, 0);
      this.cachedOffset = base - local.getTime() / 1000;
      this.cachedHour = hour;
    }
    return naiveSeconds - this.cachedOffset;
  }

  /** Naive local wall-clock seconds of an epoch instant (Python's datetime.now() as a number). */
  static naiveOf(epochSeconds: number): number {
    const offsetMinutes = -new Date(epochSeconds * 1000).getTimezoneOffset();
    return epochSeconds + offsetMinutes * 60;
  }
}
