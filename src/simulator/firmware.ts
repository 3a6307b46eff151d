/**
 * The OPNsense release the simulator plays, and what changes with it (docs/opnsense-api.md §1–§5):
 * the filter API exists from 24.1, `inet46` from 25.1, search_item's `type` is the raw value from
 * 25.7, savepoint/rollback are gone in 26.7.
 */
export interface FirmwareVersion {
  /** As `product_version` prints it: `25.1.3`, `26.7.2_1`. */
  text: string;
  major: number;
  minor: number;
}

export const DEFAULT_FIRMWARE_VERSION = '26.7.2';

const VERSION_TEXT = /^(\d{2})\.(\d{1,2})(?:\.(\d{1,2}))?(?:_\d+)?$/;

export function isFirmwareVersionText(text: string): boolean {
  const m = VERSION_TEXT.exec(text);
  return m !== null && (Number(m[2]) === 1 || Number(m[2]) === 7);
}

export function parseFirmwareVersion(text: string): FirmwareVersion {
  const m = VERSION_TEXT.exec(text);
  if (!m || !isFirmwareVersionText(text))
    throw new RangeError(`${JSON.stringify(text)} is not an OPNsense version such as 25.1 or 26.7.2 (series are YY.1 and YY.7)`);
  return { text, major: Number(m[1]), minor: Number(m[2]) };
}

/** Is `v` at least series `major.minor`? */
export function atLeast(v: FirmwareVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

export interface FirmwareFeatures {
  filterApi: boolean;
  inet46: boolean;
  savepoint: boolean;
  searchItemRawType: boolean;
}

export function firmwareFeatures(v: FirmwareVersion): FirmwareFeatures {
  return {
    filterApi: atLeast(v, 24, 1),
    inet46: atLeast(v, 25, 1),
    savepoint: atLeast(v, 24, 1) && !atLeast(v, 26, 7),
    searchItemRawType: atLeast(v, 25, 7),
  };
}

/** `firmware product` (configd) as core/firmware/status embeds it under `product`. */
export function productInfo(v: FirmwareVersion): Record<string, unknown> {
  const series = `${v.major}.${v.minor}`;
  return {
    product_abi: series,
    product_arch: 'amd64',
    product_check: null,
    product_conflicts: '',
    product_copyright_owner: 'Deciso B.V.',
    product_email: 'project@opnsense.org',
    product_hash: '0123456789',
    product_id: 'opnsense',
    product_latest: v.text.split('_')[0],
    product_mirror: `https://pkg.opnsense.org/FreeBSD:14:amd64/${series}`,
    product_name: 'OPNsense',
    product_nickname: 'Simulated Sim',
    product_series: series,
    product_tier: '1',
    product_version: v.text,
    product_website: 'https://opnsense.org/',
  };
}
