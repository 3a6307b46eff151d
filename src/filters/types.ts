import type { FilterDefinition } from '../config/fail2ban/filter-definition.ts';

export type { RegexSpec, SourceRef } from '../config/fail2ban/filter-definition.ts';

/** What the engine needs of a filter definition (tests build these by hand). */
export type EngineFilterDefinition = Pick<
  FilterDefinition,
  'name' | 'file' | 'prefregex' | 'failregex' | 'ignoreregex' | 'maxlines' | 'datepattern' | 'logtimezone'
> &
  Partial<Pick<FilterDefinition, 'jsonline'>>;
